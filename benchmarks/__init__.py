"""mlc benchmarks: mlc and onnxruntime side by side in one run.

    python -m benchmarks                 # every table (models at 1 and 2 threads, gemm, peak)
    python -m benchmarks models --models resnet18 mlp
    python -m benchmarks gemm | peak | fusion | memory | tuning

Timings are medians of many repeats with the two sides interleaved; 2-thread figures take
the best of several medians (the second core is shared with the host at times).
"""
