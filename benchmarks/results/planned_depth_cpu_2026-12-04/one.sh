#!/bin/bash
tag=$1; clip=$2; root=$3; shift 3
cd $root
OMP_NUM_THREADS=1 PYTHONPATH=$root python3 -m nvcodec encode "$@" -o /tmp/xp/$tag-$clip.dnv -y --json /tmp/xp/$tag-$clip.json > /tmp/xp/$tag-$clip.log 2>&1
echo "$tag $clip rc=$? $(date +%T)" >> /tmp/xp/done.txt
