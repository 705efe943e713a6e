#!/usr/bin/env bash
# One device session's GPU measurements on an nvidia-h200-x2 machine, run in the background so that
# they outlast the device tool's 10-minute calls (a process in its own session runs on until the
# machine goes back). What each benchmark writes lands in /tmp/res; every call copies it back.
#
#   bash benchmarks/gpu_queue.sh start          # first call: install wheels, start the queue
#   bash benchmarks/gpu_queue.sh wait SECONDS   # every call: wait (at most SECONDS), then copy results to $OUT
#   bash benchmarks/gpu_queue.sh stop           # last call: end what still runs, copy results to $OUT
#
# Order (session 3 ran an earlier version of this queue: see git history and
# benchmarks/results/gpu_h200x2_session3/): (1) issue 5's 1-vs-2-GPU encode, alone on the machine, so
# that its timing is clean; then (2) one queue per GPU, one process per GPU:
#     GPU 0: the remaining dnv RD points (issue 4), then Bunny 0.75M at 300 epochs (issue 3);
#     GPU 1: the model comparison (issue 7), then Bunny 0.35M at 300 epochs (issue 3, written to
#            bunny-gpu1/ so that two processes never write one bunny.json; merge them afterwards).
set -u
RES=/tmp/res
T=.testdata

before() {   # before MINUTES CMD...: run CMD only if the queue started less than MINUTES ago
    local minutes=$1; shift
    if [ $(( $(date +%s) - QUEUE_START )) -lt $(( minutes * 60 )) ]; then "$@"
    else echo "$(date -u +%FT%TZ) skipped (past minute $minutes): $*" >> $RES/queue.log; fi
}

queue() {
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 QUEUE_START=$(date +%s)
    mkdir -p $RES
    nvidia-smi > $RES/nvidia-smi.txt 2>&1
    echo "$(date -u +%FT%TZ) stage 1: multi_gpu" >> $RES/queue.log
    python3 benchmarks/multi_gpu.py $T/sam2_04_coffee_1280x720.mp4 --length 1200 --epochs 12 \
        --out $RES/multi_gpu > $RES/multi_gpu.log 2>&1
    echo "$(date -u +%FT%TZ) stage 2: per-GPU queues" >> $RES/queue.log
    # Each job starts only if the queue has run less than its minutes (the device time is 30 minutes
    # a session, the machine's start and the copies included).
    (
        export CUDA_VISIBLE_DEVICES=0
        before 24 python3 benchmarks/rd.py $T/openh264_VID_1920x1080_25fps_54f.264 --bpp 0.025 0.05 0.1 \
            --codecs dnv --dnv-preset fast --append --out $RES/rd
        before 20 python3 benchmarks/rd.py $T/sam2_04_coffee_1280x720.mp4 --bpp 0.025 0.05 0.1 --codecs dnv \
            --dnv-preset fast --epochs 40 --append --out $RES/rd
        before 19 python3 benchmarks/bunny.py $T/bigbuckbunny_1280x720_132f.mp4 --sizes 0.75M --epochs 300 \
            --append --out $RES/bunny
    ) > $RES/gpu0.log 2>&1 &
    (
        export CUDA_VISIBLE_DEVICES=1
        before 24 python3 benchmarks/models.py $T/davis480p_blackswan_jpg --bpp 0.1 --epochs 60 --append \
            --out $RES/models
        before 22 python3 benchmarks/models.py $T/bigbuckbunny_1280x720_132f.mp4 --frames 0:65 --bpp 0.1 \
            --epochs 60 --append --out $RES/models
        before 19 python3 benchmarks/bunny.py $T/bigbuckbunny_1280x720_132f.mp4 --sizes 0.35M --epochs 300 \
            --append --out $RES/bunny-gpu1
    ) > $RES/gpu1.log 2>&1 &
    wait
    echo "$(date -u +%FT%TZ) done" >> $RES/queue.log
}

snapshot() {
    tar -czf "$OUT/res.tar.gz" -C /tmp res 2>/dev/null
    tail -n 3 $RES/*.log 2>/dev/null
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv 2>/dev/null
}

case "${1:-}" in
start)
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    mkdir -p $RES/rd $RES/models $RES/bunny
    cp -r benchmarks/results/rd/. $RES/rd/             # the anchors and earlier dnv points
    cp -r benchmarks/results/models/. $RES/models/     # carphone, measured on the CPU
    cp benchmarks/results/bunny/bunny*.json $RES/bunny/  # 3M at 300 epochs
    export -f queue before; export RES T
    setsid bash -c queue > /tmp/queue.out 2>&1 < /dev/null &
    echo $! > /tmp/queue.pid
    sleep "${2:-5}"
    snapshot
    ;;
wait)
    end=$((SECONDS + ${2:-560}))
    while [ $SECONDS -lt $end ] && ! grep -q done $RES/queue.log 2>/dev/null; do sleep 10; done
    snapshot
    ;;
stop)
    kill -- -"$(cat /tmp/queue.pid)" 2>/dev/null; sleep 3
    snapshot
    ;;
*)
    echo "usage: $0 start [SECONDS] | wait SECONDS | stop" >&2; exit 2
    ;;
esac
