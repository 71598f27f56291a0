{
  "targets": [
    {
      "target_name": "dinoq_native_blas",
      "sources": ["native/addon.c"],
      "libraries": ["-lopenblas"],
      "cflags": ["-O3", "-fno-trapping-math", "-std=c11", "-Wall", "-Wextra"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
