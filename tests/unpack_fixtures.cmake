# Unpacks every tests/fixtures/*.tar.xz into DST (once per archive; re-run when the archive changes).
file(GLOB archives "${SRC}/*.tar.xz")  # a data directory listing, not a source list
file(MAKE_DIRECTORY "${DST}")
foreach(a ${archives})
  get_filename_component(stem "${a}" NAME_WE)
  set(stamp "${DST}/.${stem}.stamp")
  if(NOT EXISTS "${stamp}" OR "${a}" IS_NEWER_THAN "${stamp}")
    execute_process(COMMAND tar xJf "${a}" -C "${DST}" RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "could not unpack ${a}")
    endif()
    file(TOUCH "${stamp}")
  endif()
endforeach()
