set terminal pngcairo size 900,560 noenhanced font ',10'
set output "xthread-random.png"
set title "xthread random: throughput vs threads"
set xlabel "threads"
set ylabel "Mops/s"
set key outside right
set grid
set xtics ('1' 1, '2' 2)
set xrange [0.95:2.05]
plot "xthread-random.dat" index 0 with linespoints title "glibc", \
     "xthread-random.dat" index 1 with linespoints title "jemalloc", \
     "xthread-random.dat" index 2 with linespoints title "mimalloc", \
     "xthread-random.dat" index 3 with linespoints title "tcmalloc", \
     "xthread-random.dat" index 4 with linespoints title "magpage", \
     "xthread-random.dat" index 5 with linespoints title "magpage-rfc2013", \
     "xthread-random.dat" index 6 with linespoints title "magpage-vanilla39", \
     "xthread-random.dat" index 7 with linespoints title "magpage-linux6"
