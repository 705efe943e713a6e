#!/usr/bin/env bash
# One device session's GPU measurements, run in the background so that they outlast the device tool's
# 10-minute calls (a process in its own session runs on until the machine goes back). What each
# benchmark writes lands in /tmp/res; every call copies it back to $OUT as res.tar.gz.
#
#   bash benchmarks/gpu_queue.sh start PLAN MINUTES [SECONDS]  # first call: install wheels, start PLAN
#   ONLY="bunny96-medium-0.05 ..." bash benchmarks/gpu_queue.sh start rd MINUTES  # plan rd, just these jobs
#   bash benchmarks/gpu_queue.sh wait SECONDS                  # each later call: wait, copy results back
#   bash benchmarks/gpu_queue.sh stop                          # last call: end what still runs, copy back
#
# PLAN is `decode` (lane 0 alone), `rd` (lane 1 alone), `lr` (lane 2 alone), `multi` (issue 5's 1-vs-2-GPU encode alone on an nvidia-h200-x2, so that its timing is clean),
# `side` (issue 17's quality jobs all at once on one GPU), `lanes` (the other benchmarks, one lane of jobs per GPU; written for an nvidia-h200-x4, the lanes
# fold onto fewer GPUs where there are fewer, one after another) or `together` (all four lanes at once,
# sharing GPUs where there are fewer: quality experiments only, their timings are not clean). A job starts only if its estimated minutes still fit in
# MINUTES from the start of the queue, so that nothing is cut off half-way when the device time ends.
# Jobs that write the same result file run in one lane, or each lane writes its own folder
# (rd-laneN/, models-laneN/, bunny-laneN/): merge them afterwards (python3 -m benchmarks.rd, .models or .bunny --merge).
# The lanes below hold what is left to measure (benchmarks/GPU_RUNS.md); what earlier lanes measured is in
# benchmarks/results/, with each queue's logs in a folder named by topic and date.
set -u
RES=/tmp/res
T=.testdata

job() {   # job MINUTES CMD...: run CMD if it can end before the queue's MINUTES are up
    local est=$1; shift
    local age=$(( $(date +%s) - QUEUE_START ))
    if [ $(( age + est * 60 )) -le $(( QUEUE_MINUTES * 60 )) ]; then
        echo "$(date -u +%FT%TZ) lane ${LANE:-0} start (${est} min est.): $*" >> $RES/queue.log
        "$@"
        echo "$(date -u +%FT%TZ) lane ${LANE:-0} end rc=$?: $1 $2" >> $RES/queue.log
    else
        echo "$(date -u +%FT%TZ) lane ${LANE:-0} skipped (needs ${est} min, $(( QUEUE_MINUTES - age / 60 )) left): $*" >> $RES/queue.log
    fi
}

plan_multi() {   # 1.61x at 12 epochs (results/multi_gpu), where start-up weighs a quarter: hence 50 epochs
    python3 -m benchmarks.multi_gpu $T/sam2_04_coffee_1280x720.mp4 --length 1200 --epochs ${MULTI_EPOCHS:-50} \
        --out $RES/multi_gpu > $RES/multi_gpu.log 2>&1
}

# The lanes: each a list of jobs for one GPU, in priority order (benchmarks/GPU_RUNS.md): what is left for
# issue 3, for one GPU.
BUNNY() { local out=$1; shift
    python3 -m benchmarks.bunny $T/bigbuckbunny_1280x720_132f.mp4 --out $RES/$out "$@"; }
NETWORK_SPEED() {   # the decoder network alone, in each execution setting, with its slowest kernels
    python3 -m benchmarks.network_speed --model hinerv --size 1280x720 --frames 96 --bpp 0.05 --batch 16 \
        --settings fp32_reductions fp32 bf16_reductions bf16 bf16_products --out $RES/network_speed > $RES/network-hinerv.log 2>&1
}
DECODE_SPEED() { local log=$1; shift   # 96 or more frames of Bunny 1280x720 at 0.05 bpp, decoded alone on the GPU
    python3 -m benchmarks.decode_speed $T/bigbuckbunny_1280x720_132f.mp4 --out $RES/decode_speed "$@" > $RES/decode-$log.log 2>&1
}
DEPTHWISE_SPEED() {   # hinerv's depthwise convolutions at 720p, compiled, forward and backward: cuDNN NHWC / NCHW, slices
    python3 -m benchmarks.depthwise_speed --out $RES/depthwise_speed > $RES/depthwise_speed.log 2>&1
}
FINETUNE_OVERHEAD() {   # what a fine-tuning step adds around the compiled step, piece by piece, at Bunny 0.05's plan
    python3 -m benchmarks.finetune_overhead --out $RES/finetune_overhead > $RES/finetune_overhead.log 2>&1
}
COMPILE_TIMES() {   # where the first epoch's compile goes, Bunny 0.05's step alone, with empty compile caches
    TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) TRITON_CACHE_DIR=$(mktemp -d) python3 -m benchmarks.train_probe \
        $T/bigbuckbunny_1280x720_132f.mp4 --frames 96 --bpp 0.05 --batches 1 --modes reduce-overhead --steps 20 \
        --compile-times 25 --compile-profile 40 > $RES/compile_times.log 2>&1
}
COMPILE_AUTOTUNE() {   # the cold first step with and without Inductor's benchmarking of pointwise kernels' configurations
    # (off in encodes since results/compile_autotune_adan_gpu_2026-12-06/: fit.INDUCTOR_OPTIONS), each with empty caches
    local setting
    for setting in "--inductor triton.autotune_pointwise=True" ""; do
        TORCHINDUCTOR_CACHE_DIR=$(mktemp -d) TRITON_CACHE_DIR=$(mktemp -d) python3 -m benchmarks.train_probe \
            $T/bigbuckbunny_1280x720_132f.mp4 --frames 96 --bpp 0.05 --batches 1 --modes reduce-overhead --steps 200 \
            $setting >> $RES/compile_autotune.log 2>&1
    done
}
IMPORT_PROBE() {   # a fresh process's import of torch's compiler stack, plain, then with a bytecode cache (the GPU
    # machine's torch holds no .pyc files: every process compiles Dynamo's and Inductor's Python again), each bounded
    local TIMEFORMAT='%R s'
    {
        python3 -c "import torch; print(torch.__version__, torch.__file__)"
        for run in plain plain cached cached cached; do
            echo "import torch._inductor.compile_fx, $run:"
            if [ $run = cached ]; then
                time PYTHONPYCACHEPREFIX=/tmp/pycache timeout 120 python3 -c "import torch._inductor.compile_fx"
            else
                time timeout 120 python3 -c "import torch._inductor.compile_fx"
            fi
        done
    } > $RES/import_probe.log 2>&1
}
lane0() {
    # Decoding to .mp4 and .y4m, alone on the GPU: issue 21's 200 frames/s with dnv decode's defaults (32 frames a
    # call on a GPU), five decodes a row (runs of one setting differed by up to 60 %), and the bf16_products
    # candidate. Last run: results/decode_speed/fused_norm_pipeline_2026-12-03/.
    job 2 NETWORK_SPEED
    job 3 DECODE_SPEED hinerv-yuv420 --frames 96 --model hinerv --color yuv420 --to mp4 y4m none --runs 5 \
        --precision bf16 --command-runs 1 --save-dnv $RES/hinerv96.dnv
    job 1 DECODE_SPEED hinerv-fp32 --dnv $RES/hinerv96.dnv --to mp4 none --runs 5 --precision fp32 --command-runs 1
    job 1 DECODE_SPEED hinerv-b16 --dnv $RES/hinerv96.dnv --to mp4 --runs 5 --batch 16 --precision bf16 --command-runs 0
    job 2 DECODE_SPEED dnerv-source --frames 96 --model dnerv --to mp4 y4m none --runs 5 --precision bf16 --command-runs 1
    job 2 DECODE_SPEED hinerv-132 --frames 132 --model hinerv --color yuv420 --to mp4 none --runs 5 --precision bf16 \
        --command-runs 0
}
lane1() {
    # Issue 17 (benchmarks/jobs/medium_720p.txt, medium_small.txt). First, a minute: the fine-tuning's pieces with the
    # swap and the freezer gathering into kept buffers (ATen ops a step 1735 -> 1060 on the CPU; on the H200 before:
    # 4.7 ms a step of host time, results/medium_rounded_plan_gpu_2026-12-04/), and what a fresh process spends
    # importing torch's compiler stack with and without a bytecode cache. Then Bunny 0.05 alone (its fine-tuning took
    # 44 s for 30 epochs, 1.48 s each against 0.785 s in the main phase; the encode 379.6 s, 36.20 dB). After it,
    # whether per-row entropy models would code its weights smaller (benchmarks/row_model_gain.py on its file: on three
    # small CPU files they cost 3-8 % more).
    # Then coffee's and Bunny's missing points, alone: a 720p medium encode keeps the H200 busy. After Bunny 0.1,
    # where a cold compile's 66 s go (train_probe --compile-profile: the first step under cProfile, since Dynamo's
    # accounting recorded nothing on torch 2.11). Carphone 0.1 last (its report of session 25 did not come back).
    local name est
    for name_est in finetune-overhead:2 import-probe:2 bunny96-medium-0.05:8 row-model-gain:2 coffee100-medium-0.05:8 \
                    bunny96-medium-0.1:9 compile-times:3 compile-autotune:4 coffee100-medium-0.1:9 carphone-medium-0.1:4; do
        name=${name_est%:*}; est=${name_est#*:}
        [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]] || continue   # ONLY="name ...": just these jobs
        case $name in
        finetune-overhead) job "$est" FINETUNE_OVERHEAD ;;
        import-probe) job "$est" IMPORT_PROBE ;;
        row-model-gain) job "$est" python3 -m benchmarks.row_model_gain $RES/medium_720p/bunny96-medium-0.05.dnv \
               --json $RES/row_model_gain.json > $RES/row_model_gain.log 2>&1 ;;
        compile-times) job "$est" COMPILE_TIMES ;;
        compile-autotune) job "$est" COMPILE_AUTOTUNE ;;
        blackswan-*|carphone-*|cisco-*) job "$est" python3 -m benchmarks.sweep benchmarks/jobs/medium_small.txt \
               --out $RES/medium_small --parallel 1 --only "$name" >> $RES/medium_small.log 2>&1 ;;
        *) job "$est" python3 -m benchmarks.sweep benchmarks/jobs/medium_720p.txt --out $RES/medium_720p --parallel 1 \
               --keep --only "$name" >> $RES/medium_720p.log 2>&1 ;;
        esac
    done
}
lane2() {
    # A second seed of the lr 2e-3 pair (benchmarks/jobs/lr_seed.txt), 4 encodes side by side (about 5 minutes).
    OMP_NUM_THREADS=2 job 6 python3 -m benchmarks.sweep benchmarks/jobs/lr_seed.txt --out $RES/lr_seed --parallel 4 \
        > $RES/lr_seed.log 2>&1
}
lane3() { :; }

plan_lanes() {
    local gpus; gpus=$(nvidia-smi -L | wc -l)
    [ "$gpus" -ge 1 ] || { echo "no GPU" >> $RES/queue.log; return; }
    # Host threads split between the lanes, so that their CPU work does not oversubscribe the cores.
    export OMP_NUM_THREADS=$(( $(nproc) / (gpus < 4 ? gpus : 4) ))
    for g in $(seq 0 $(( gpus - 1 ))); do
        (
            export CUDA_VISIBLE_DEVICES=$g
            for lane in 0 1 2 3; do
                if [ $(( lane % gpus )) -eq "$g" ]; then LANE=$lane; lane$lane; fi
            done
        ) > $RES/gpu$g.log 2>&1 &
    done
    wait
}

plan_decode() { export OMP_NUM_THREADS=$(nproc); LANE=0 lane0; }   # lane 0 alone: clean timings
plan_rd() { LANE=1 lane1; }                                          # lane 1 alone
plan_lr() { LANE=2 lane2; }                                          # lane 2 alone

plan_side() {   # the 720p jobs at once on one GPU (quality only: their times are not speed figures), the small
    # clips' jobs one after another (each alone: their times count): by default the 5-bit plan at 720p, which
    # needs about 10 minutes side by side (benchmarks/GPU_RUNS.md, session 41).
    export OMP_NUM_THREADS=2
    # ONLY: a shorter list of jobs (of either job file), for a session with less device time.
    local only=${ONLY:-coffee100-medium-0.05-qb5 bunny96-medium-0.05-qb5}
    local big="" small="" name
    for name in $only; do
        if grep -q "^$name:" benchmarks/jobs/medium_720p.txt; then big="$big $name"; else small="$small $name"; fi
    done
    # BIG_PARALLEL: 720p jobs at once (two fill an H100; fewer at once means the first results come back sooner).
    [ -z "$big" ] || python3 -m benchmarks.sweep benchmarks/jobs/medium_720p.txt --out $RES/side_720p \
        --parallel ${BIG_PARALLEL:-5} --only $big > $RES/side_720p.log 2>&1 &
    [ -z "$small" ] || python3 -m benchmarks.sweep benchmarks/jobs/medium_small.txt --out $RES/side_small --parallel 1 \
        --only $small > $RES/side_small.log 2>&1 &
    wait
    # THEN_TOGETHER: small jobs to run side by side after those (quality only: their times are not speed figures).
    [ -z "${THEN_TOGETHER:-}" ] || python3 -m benchmarks.sweep benchmarks/jobs/medium_small.txt \
        --out $RES/side_small_together --parallel 4 --only $THEN_TOGETHER > $RES/side_small_together.log 2>&1
}

plan_together() {   # every lane at once, lane N on GPU N mod GPUs: for quality, not timing, where lanes share a GPU
    local gpus; gpus=$(nvidia-smi -L | wc -l)
    [ "$gpus" -ge 1 ] || { echo "no GPU" >> $RES/queue.log; return; }
    export OMP_NUM_THREADS=$(( $(nproc) / 4 ))
    for lane in 0 1 2 3; do
        ( export CUDA_VISIBLE_DEVICES=$(( lane % gpus )) LANE=$lane; lane$lane ) > $RES/lane$lane.log 2>&1 &
    done
    wait
}

queue() {
    export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 QUEUE_START=$(date +%s)
    nvidia-smi > $RES/nvidia-smi-$PLAN.txt 2>&1
    echo "$(date -u +%FT%TZ) plan $PLAN, $QUEUE_MINUTES minutes" >> $RES/queue.log
    plan_$PLAN
    echo "$(date -u +%FT%TZ) done" >> $RES/queue.log
}

snapshot() {
    # Figures and logs only: the kept .dnv, checkpoints and decoded videos would push the archive over what
    # comes back, so nothing over 2 MB travels.
    (cd /tmp && find res -type f -size -2M ! -name '*.dnv' ! -name '*.mp4' ! -name '*.y4m' | tar -czf "$OUT/res.tar.gz" -T -)
    tail -n 3 $RES/queue.log 2>/dev/null
    nvidia-smi --query-gpu=index,utilization.gpu,memory.used --format=csv 2>/dev/null
}

case "${1:-}" in
start)
    PLAN=${2:?plan: multi, lanes, decode, rd, side or together}; QUEUE_MINUTES=${3:?minutes}
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
    mkdir -p $RES
    # A queue that ran earlier on this machine leaves "done" in its log, which would end every `wait` at once.
    [ -f $RES/queue.log ] && mv $RES/queue.log $RES/queue-$(date +%s).log
    export -f queue job plan_side BUNNY NETWORK_SPEED DECODE_SPEED DEPTHWISE_SPEED FINETUNE_OVERHEAD COMPILE_TIMES COMPILE_AUTOTUNE IMPORT_PROBE plan_multi plan_lanes plan_decode plan_rd plan_lr plan_together lane0 lane1 lane2 lane3
    export RES T PLAN QUEUE_MINUTES ONLY THEN_TOGETHER BIG_PARALLEL
    # The queue runs from its own copy of the tree: every device call copies the working tree afresh into the
    # repository root, and a job importing a module meanwhile can fail (2026-12-06: two of three jobs,
    # ModuleNotFoundError four seconds in).
    rm -rf /tmp/queue-tree && mkdir -p /tmp/queue-tree || exit 1
    tar --exclude=./.whl --exclude=./.git -cf - . | tar -C /tmp/queue-tree -xf - && cd /tmp/queue-tree || exit 1
    setsid bash -c queue > /tmp/queue.out 2>&1 < /dev/null &
    echo $! > /tmp/queue.pid
    sleep "${4:-5}"
    snapshot
    ;;
wait)
    end=$((SECONDS + ${2:-550}))
    while [ $SECONDS -lt $end ] && ! grep -q done $RES/queue.log 2>/dev/null; do sleep 10; done
    snapshot
    ;;
stop)
    kill -- -"$(cat /tmp/queue.pid)" 2>/dev/null; sleep 3
    # An encode still compiling its first step outlived SIGTERM for minutes (2026-12-06, night: it waited for the
    # step's end to save; it now stops at once there), and would share the GPU with the next queue's jobs: kill
    # whatever is left. (The bracket keeps pkill from matching its own command line.)
    pkill -9 -f "[n]vcodec encode" 2>/dev/null
    snapshot
    ;;
*)
    echo "usage: $0 start PLAN MINUTES [SECONDS] | wait SECONDS | stop" >&2; exit 2
    ;;
esac
