# bench_sigbench: page-sized alloc/free throughput on every thread (pinned)
# as per-thread timer signals, whose handlers allocate, rise from 0 to 50 kHz
# (issue 3).  Included from bench/CMakeLists.txt.  Like the other benchmarks
# it links only libc and pthread and measures whatever allocator is preloaded:
#   LD_PRELOAD=build/libmagpage.so MAGPAGE_CONF=signal:trylock build/bench/bench_sigbench
#   LD_PRELOAD=build/libmagpage.so MAGPAGE_CONF=signal:bypass  build/bench/bench_sigbench
# A smoke run for ctest, if wanted: bench_sigbench -d 0.2 -R 1 -r 0,1000
find_package(Threads REQUIRED)

add_executable(bench_sigbench ${CMAKE_CURRENT_LIST_DIR}/sigbench.c)
set_target_properties(bench_sigbench PROPERTIES
  C_STANDARD 11 C_STANDARD_REQUIRED ON C_EXTENSIONS ON)
# -O2 whatever the build type; malloc and free stay real calls (GCC may
# otherwise pair and delete them), the checksum keeps the touches alive.
target_compile_options(bench_sigbench PRIVATE
  -O2 -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -fno-builtin-malloc -fno-builtin-free)
target_compile_definitions(bench_sigbench PRIVATE _GNU_SOURCE)
target_link_libraries(bench_sigbench PRIVATE Threads::Threads ${CMAKE_DL_LIBS} rt)
