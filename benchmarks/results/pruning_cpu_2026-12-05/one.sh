#!/bin/bash
# one.sh NAME CLIP ARGS...: one encode in the background, one thread
name=$1; clip=$2; shift 2
cd /work/runs/prune
OMP_NUM_THREADS=1 PYTHONPATH=/work/wt34 setsid nohup /usr/bin/time -v python3 -m nvcodec encode /work/wt34/$clip "$@" -q -y -o $name.dnv --json $name.json > $name.log 2>&1 &
