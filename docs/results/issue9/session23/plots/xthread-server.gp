set terminal pngcairo size 900,560 noenhanced font ',10'
set output "xthread-server.png"
set title "xthread server: throughput vs threads"
set xlabel "threads"
set ylabel "Mops/s"
set key outside right
set grid
set xtics ('1' 1, '2' 2)
set xrange [0.95:2.05]
plot "xthread-server.dat" index 0 with linespoints title "glibc", \
     "xthread-server.dat" index 1 with linespoints title "jemalloc", \
     "xthread-server.dat" index 2 with linespoints title "mimalloc", \
     "xthread-server.dat" index 3 with linespoints title "tcmalloc", \
     "xthread-server.dat" index 4 with linespoints title "magpage", \
     "xthread-server.dat" index 5 with linespoints title "magpage-rfc2013", \
     "xthread-server.dat" index 6 with linespoints title "magpage-vanilla39", \
     "xthread-server.dat" index 7 with linespoints title "magpage-linux6"
