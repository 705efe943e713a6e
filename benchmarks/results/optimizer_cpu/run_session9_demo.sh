C=$(python -c "from nvcodec.demo import demo_clip; print(demo_clip())")
for cfg in "adam 1e-3 40 6" "adan 4e-3 100 10" "adam 1e-3 100 10" "adan 8e-3 40 6"; do
  set -- $cfg
  dnv encode $C -o /tmp/demoopt/demo_$1_$2_$3.dnv --bpp 0.3 --preset fast --epochs $3 --prune-epochs $4 --train optimizer=$1 --lr $2 --json /tmp/demoopt/demo_$1_$2_$3.json --quiet
done
