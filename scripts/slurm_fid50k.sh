#!/usr/bin/env bash
# FID-50k of an official checkpoint on a Slurm cluster: a job array renders and evaluates N shards in parallel
# (each shard writes exact partial statistics), then one dependent job merges them and prints FID / sFID / IS.
#
#   sbatch --array=0-7 scripts/slurm_fid50k.sh render      # 8 shards of 6,250 images each
#   sbatch --dependency=afterok:<array job id> scripts/slurm_fid50k.sh merge
#
# Settings (environment, with defaults):
#   PROTOCOL=var-d16  VAE=vae_ch160v4096z32.pth  CKPT=var_d16.pth  REF=VIRTUAL_imagenet256_labeled.npz
#   WORK=fid50k_$PROTOCOL (shared filesystem)  SHARDS=$SLURM_ARRAY_TASK_COUNT (or 8)  ARGEN=build/argen
#   KEEP_IMAGES=1 also keeps each shard's images as $WORK/samples.shardKofN.npz
#   PR=1 also keeps each shard's pool3 features ($WORK/featK.npy, 8 KiB per image) and the merge prints precision
#        and recall (REF must hold its images, arr_0, as the ADM reference batches do)
# The Inception weights come from --inception, $ARGEN_INCEPTION or ~/.cache/argen (see `argen fid --help`).
# A preempted shard resumes where it stopped when KEEP_IMAGES=1 (finished images are read back, not regenerated).
#SBATCH --job-name=argen-fid50k
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --time=02:00:00
#SBATCH --output=%x-%A_%a.log
set -euo pipefail
stage=${1:?usage: slurm_fid50k.sh render|merge}
PROTOCOL=${PROTOCOL:-var-d16}
VAE=${VAE:-vae_ch160v4096z32.pth}
CKPT=${CKPT:-var_d16.pth}
REF=${REF:-VIRTUAL_imagenet256_labeled.npz}
WORK=${WORK:-fid50k_$PROTOCOL}
SHARDS=${SHARDS:-${SLURM_ARRAY_TASK_COUNT:-8}}
ARGEN=${ARGEN:-build/argen}
mkdir -p "$WORK"
case "$stage" in
  render)
    k=${SLURM_ARRAY_TASK_ID:?run as a job array: sbatch --array=0-$((SHARDS - 1)) $0 render}
    out=()
    if [[ ${KEEP_IMAGES:-0} == 1 ]]; then out=(--out "$WORK/samples.npz"); fi
    if [[ ${PR:-0} == 1 ]]; then out+=(--features-out "$WORK/feat$k.npy"); fi
    "$ARGEN" render --protocol "$PROTOCOL" --vae "$VAE" --ckpt "$CKPT" --device cuda --dtype bf16 \
      --shard "$k/$SHARDS" --fid-ref "$REF" --save-stats "$WORK/part$k.npz" "${out[@]}"
    ;;
  merge)
    parts=()
    for ((k = 0; k < SHARDS; k++)); do parts+=("$WORK/part$k.npz"); done
    "$ARGEN" fid-merge "${parts[@]}" -o "$WORK/stats.npz"
    "$ARGEN" fid "$WORK/stats.npz" "$REF" --json | tee "$WORK/fid.json"
    if [[ ${PR:-0} == 1 ]]; then
      feats=()
      for ((k = 0; k < SHARDS; k++)); do feats+=("$WORK/feat$k.npy"); done
      "$ARGEN" fid-merge "${feats[@]}" -o "$WORK/feats.npy"
      "$ARGEN" fid "$WORK/feats.npy" "$REF" --pr --json | tee "$WORK/pr.json"
    fi
    ;;
  *) echo "unknown stage '$stage' (render|merge)" >&2; exit 2 ;;
esac
