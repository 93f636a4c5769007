# Bar chart of the ours/runc-v2 ratios of one `make bench` run, with targets.
# gnuplot -e "datafile='...'; outfile='...'; subtitle='...'" bench/plot.gp
# datafile: "label"<TAB>ratio<TAB>target (target empty when there is none).
set terminal pngcairo size 1200,600 font "DejaVu Sans,10"
set output outfile
set title "containerd-shim-runhcs-v1 / containerd-shim-runc-v2 (ratio, log scale)\n{/*0.8 ".subtitle.": below 1 = ours lower (better, except relay MiB/s: above 1 = better); UVM bars: value / absolute target}"
set datafile separator "\t"
set style fill solid 0.7 border -1
set boxwidth 0.6
set logscale y
set yrange [0.02:200]
set grid ytics
set ylabel "ours / runc-v2"
set xtics rotate by -30 scale 0 font ",9"
set key top left
set bmargin 7
set rmargin 6
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 2 lc rgb "#555555"
plot datafile using 0:2:xtic(1) with boxes lc rgb "#3b75af" title "ratio", \
     '' using 0:2:(sprintf("%.2f", $2)) with labels offset 0,0.8 font ",9" notitle, \
     '' using ($0 - 0.4):($3 > 0 ? $3 : 1/0):(0.8):(0) with vectors nohead lw 3 lc rgb "#c0392b" title "target"
