from hrnext_trt.cli import main

main()
