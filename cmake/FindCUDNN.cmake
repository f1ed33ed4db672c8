# FindCUDNN: locates NVIDIA cuDNN (headers and the main shared library).
#
# Where it looks, first match wins:
#   1. CUDNN_ROOT, as a CMake variable (-DCUDNN_ROOT=...) or an environment variable;
#   2. the CUDA toolkit (CUDAToolkit_ROOT, the toolkit find_package(CUDAToolkit)
#      found, CUDA_PATH, the directory of nvcc, /usr/local/cuda);
#   3. the system's default search paths.
# A root is searched in include/ and lib64/, lib/ or lib/x86_64-linux-gnu/. This
# covers the toolkit layout and PyTorch's pip wheel (nvidia/cudnn/include and
# nvidia/cudnn/lib), where only libcudnn.so.<major> may exist, with no
# unversioned libcudnn.so beside it.
#
# Result variables:
#   CUDNN_FOUND        true when both the header and the library were found
#   CUDNN_INCLUDE_DIR  the directory holding cudnn.h
#   CUDNN_LIBRARY      the full path of libcudnn
#   CUDNN_VERSION      major.minor.patch, read from cudnn_version.h (or cudnn.h before cuDNN 8)
#   CUDNN_VERSION_MAJOR, CUDNN_VERSION_MINOR, CUDNN_VERSION_PATCH
# Imported target:
#   CUDNN::cudnn       links libcudnn and adds CUDNN_INCLUDE_DIR
#
# Usage:  find_package(CUDNN 9)   or   find_package(CUDNN 9 REQUIRED)
include(FindPackageHandleStandardArgs)

set(CUDNN_ROOT "${CUDNN_ROOT}" CACHE PATH "Root of a cuDNN installation (holding include/ and lib/ or lib64/)")

set(_cudnn_hints)
if(CUDNN_ROOT)
  list(APPEND _cudnn_hints "${CUDNN_ROOT}")
endif()
if(DEFINED ENV{CUDNN_ROOT} AND NOT "$ENV{CUDNN_ROOT}" STREQUAL "")
  list(APPEND _cudnn_hints "$ENV{CUDNN_ROOT}")
endif()
if(CUDAToolkit_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_ROOT}")
endif()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _cudnn_hints "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_BIN_DIR)  # set by find_package(CUDAToolkit), as in basinConfig.cmake
  get_filename_component(_cudnn_cuda_root "${CUDAToolkit_BIN_DIR}" DIRECTORY)
  list(APPEND _cudnn_hints "${_cudnn_cuda_root}")
endif()
if(DEFINED ENV{CUDA_PATH})
  list(APPEND _cudnn_hints "$ENV{CUDA_PATH}")
endif()
if(CMAKE_CUDA_COMPILER)
  get_filename_component(_cudnn_nvcc_dir "${CMAKE_CUDA_COMPILER}" DIRECTORY)
  get_filename_component(_cudnn_cuda_root "${_cudnn_nvcc_dir}" DIRECTORY)
  list(APPEND _cudnn_hints "${_cudnn_cuda_root}")
endif()
list(APPEND _cudnn_hints /usr/local/cuda)

# A root the user named explicitly is searched alone first, so a second cuDNN
# in the toolkit or under /usr cannot shadow it.
if(_cudnn_hints)
  list(GET _cudnn_hints 0 _cudnn_first_hint)
endif()
if(CUDNN_ROOT OR (DEFINED ENV{CUDNN_ROOT} AND NOT "$ENV{CUDNN_ROOT}" STREQUAL ""))
  find_path(CUDNN_INCLUDE_DIR NAMES cudnn.h
    PATHS "${_cudnn_first_hint}" PATH_SUFFIXES include NO_DEFAULT_PATH)
endif()
find_path(CUDNN_INCLUDE_DIR NAMES cudnn.h
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES include include/x86_64-linux-gnu)

# The version: cuDNN 8 and later keep it in cudnn_version.h, older ones in cudnn.h.
unset(CUDNN_VERSION)
unset(CUDNN_VERSION_MAJOR)
if(CUDNN_INCLUDE_DIR)
  set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn_version.h")
  if(NOT EXISTS "${_cudnn_version_header}")
    set(_cudnn_version_header "${CUDNN_INCLUDE_DIR}/cudnn.h")
  endif()
  file(STRINGS "${_cudnn_version_header}" _cudnn_version_lines
    REGEX "^#define[ \t]+CUDNN_(MAJOR|MINOR|PATCHLEVEL)[ \t]+[0-9]+")
  foreach(_part MAJOR MINOR PATCHLEVEL)
    set(_cudnn_${_part} "")
    foreach(_line IN LISTS _cudnn_version_lines)
      if(_line MATCHES "^#define[ \t]+CUDNN_${_part}[ \t]+([0-9]+)")
        set(_cudnn_${_part} "${CMAKE_MATCH_1}")
      endif()
    endforeach()
  endforeach()
  if(NOT _cudnn_MAJOR STREQUAL "" AND NOT _cudnn_MINOR STREQUAL "" AND NOT _cudnn_PATCHLEVEL STREQUAL "")
    set(CUDNN_VERSION_MAJOR "${_cudnn_MAJOR}")
    set(CUDNN_VERSION_MINOR "${_cudnn_MINOR}")
    set(CUDNN_VERSION_PATCH "${_cudnn_PATCHLEVEL}")
    set(CUDNN_VERSION "${_cudnn_MAJOR}.${_cudnn_MINOR}.${_cudnn_PATCHLEVEL}")
  endif()
endif()

# The library: the unversioned name first, then libcudnn.so.<major> for
# installs (the pip wheel) that ship only the versioned file.
set(_cudnn_names cudnn)
if(CUDNN_VERSION_MAJOR)
  list(APPEND _cudnn_names "libcudnn.so.${CUDNN_VERSION_MAJOR}")
endif()
list(APPEND _cudnn_names libcudnn.so.9 libcudnn.so.8)
set(_cudnn_lib_suffixes lib64 lib lib/x86_64-linux-gnu)
if(CUDNN_ROOT OR (DEFINED ENV{CUDNN_ROOT} AND NOT "$ENV{CUDNN_ROOT}" STREQUAL ""))
  find_library(CUDNN_LIBRARY NAMES ${_cudnn_names}
    PATHS "${_cudnn_first_hint}" PATH_SUFFIXES ${_cudnn_lib_suffixes} NO_DEFAULT_PATH)
endif()
find_library(CUDNN_LIBRARY NAMES ${_cudnn_names}
  HINTS ${_cudnn_hints}
  PATH_SUFFIXES ${_cudnn_lib_suffixes})

if(_cudnn_first_hint AND (CUDNN_ROOT OR (DEFINED ENV{CUDNN_ROOT} AND NOT "$ENV{CUDNN_ROOT}" STREQUAL ""))
   AND CUDNN_INCLUDE_DIR AND NOT CUDNN_INCLUDE_DIR MATCHES "^${_cudnn_first_hint}")
  message(WARNING "FindCUDNN: no cuDNN under CUDNN_ROOT=${_cudnn_first_hint}; using ${CUDNN_INCLUDE_DIR}")
endif()

find_package_handle_standard_args(CUDNN
  REQUIRED_VARS CUDNN_LIBRARY CUDNN_INCLUDE_DIR
  VERSION_VAR CUDNN_VERSION)

if(CUDNN_FOUND AND NOT TARGET CUDNN::cudnn)
  add_library(CUDNN::cudnn SHARED IMPORTED)
  set_target_properties(CUDNN::cudnn PROPERTIES
    IMPORTED_LOCATION "${CUDNN_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
  # The versioned file name doubles as the soname the loader looks for at run time.
  get_filename_component(_cudnn_library_name "${CUDNN_LIBRARY}" NAME)
  if(_cudnn_library_name MATCHES "\\.so\\.[0-9]+$")
    set_target_properties(CUDNN::cudnn PROPERTIES IMPORTED_SONAME "${_cudnn_library_name}")
  endif()
endif()

mark_as_advanced(CUDNN_INCLUDE_DIR CUDNN_LIBRARY)
unset(_cudnn_hints)
unset(_cudnn_first_hint)
unset(_cudnn_names)
unset(_cudnn_lib_suffixes)
unset(_cudnn_cuda_root)
unset(_cudnn_nvcc_dir)
unset(_cudnn_library_name)
unset(_cudnn_version_lines)
unset(_cudnn_version_header)
