set -x
C=/work/shared/testdata/carphone_qcif_120f_x264qp10.mp4
for cfg in "adam 1e-3" "adan 1e-3" "adan 3e-3" "adam 3e-3" "adan 4e-3"; do
  set -- $cfg
  dnv encode $C -o /tmp/cpuopt/$1_$2.dnv --bpp 0.3 --frames 0:32 --train epochs=100 --train prune_epochs=10 --train optimizer=$1 --lr $2 --json /tmp/cpuopt/$1_$2.json --quiet
done
# session 9: the same at 70 + 7 epochs
dnv encode $C -o /tmp/cpuopt/adan_4e-3_70.dnv --bpp 0.3 --frames 0:32 --train epochs=70 --train prune_epochs=7 --train optimizer=adan --lr 4e-3 --json /tmp/cpuopt/adan_4e-3_70.json --quiet
