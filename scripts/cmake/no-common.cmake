# Included by scripts/setup right after llama.cpp's project() call (CMAKE_PROJECT_llama.cpp_INCLUDE).
# llama-cpp-python forces LLAMA_BUILD_COMMON on, but its Python package never loads libllama-common
# (llmos uses llama.h only): turning it off again skips a third of the compile.
set(LLAMA_BUILD_COMMON OFF CACHE BOOL "llama: build common utils library (not used by llmos)" FORCE)
