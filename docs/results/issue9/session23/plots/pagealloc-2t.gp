set terminal pngcairo size 1500,500 noenhanced font ',10'
set output "pagealloc-2t.png"
set multiplot layout 1,3 title "pagealloc, 2 threads: cycles per page vs batch"
set logscale x 2
set logscale y
set xlabel 'batch (blocks)'
set ylabel 'TSC cycles per block'
set key top right
set grid
set title "alloc"
plot "pagealloc-2t.dat" index 0 with linespoints title "glibc", \
     "pagealloc-2t.dat" index 1 with linespoints title "jemalloc", \
     "pagealloc-2t.dat" index 2 with linespoints title "mimalloc", \
     "pagealloc-2t.dat" index 3 with linespoints title "tcmalloc", \
     "pagealloc-2t.dat" index 4 with linespoints title "magpage", \
     "pagealloc-2t.dat" index 5 with linespoints title "magpage-rfc2013", \
     "pagealloc-2t.dat" index 6 with linespoints title "magpage-vanilla39", \
     "pagealloc-2t.dat" index 7 with linespoints title "magpage-linux6"
set title "free"
plot "pagealloc-2t.dat" index 8 with linespoints title "glibc", \
     "pagealloc-2t.dat" index 9 with linespoints title "jemalloc", \
     "pagealloc-2t.dat" index 10 with linespoints title "mimalloc", \
     "pagealloc-2t.dat" index 11 with linespoints title "tcmalloc", \
     "pagealloc-2t.dat" index 12 with linespoints title "magpage", \
     "pagealloc-2t.dat" index 13 with linespoints title "magpage-rfc2013", \
     "pagealloc-2t.dat" index 14 with linespoints title "magpage-vanilla39", \
     "pagealloc-2t.dat" index 15 with linespoints title "magpage-linux6"
set title "total"
plot "pagealloc-2t.dat" index 16 with linespoints title "glibc", \
     "pagealloc-2t.dat" index 17 with linespoints title "jemalloc", \
     "pagealloc-2t.dat" index 18 with linespoints title "mimalloc", \
     "pagealloc-2t.dat" index 19 with linespoints title "tcmalloc", \
     "pagealloc-2t.dat" index 20 with linespoints title "magpage", \
     "pagealloc-2t.dat" index 21 with linespoints title "magpage-rfc2013", \
     "pagealloc-2t.dat" index 22 with linespoints title "magpage-vanilla39", \
     "pagealloc-2t.dat" index 23 with linespoints title "magpage-linux6"
unset multiplot
