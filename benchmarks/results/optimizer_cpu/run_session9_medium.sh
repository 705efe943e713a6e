D=$(python -c "from nvcodec.demo import demo_clip; print(demo_clip())")
C=/work/shared/testdata/carphone_qcif_120f_x264qp10.mp4
for cfg in "demo adan 4e-3 210 21" "demo adam 1e-3 300 30" "carphone adan 4e-3 210 21" "carphone adam 1e-3 300 30"; do
  set -- $cfg
  if [ $1 = demo ]; then IN=$D; R=""; else IN=$C; R="--frames 0:32"; fi
  dnv encode $IN -o /tmp/demoopt/m_$1_$2_$4.dnv --bpp 0.3 $R --epochs $4 --prune-epochs $5 --train optimizer=$2 --lr $3 --json /tmp/demoopt/m_$1_$2_$4.json --quiet
done
