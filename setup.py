from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def _package_data():
    # The bundled sample datasets travel with the package (the demo's default input).
    base = ROOT / "hrnext_trt"
    return [str(p.relative_to(base)) for p in (base / "bundled_data").rglob("*") if p.is_file()]


# TensorRT needs a GPU to build; TensorRT for RTX builds on any x86-64 machine (its wheels: ~95 MB
# download, ~240 MB installed; CUDA 13 builds: the -cu12 wheels serve older drivers). pycuda has no
# binary wheels: pip compiles it against a CUDA toolkit (see README).
TRT_RTX = ["tensorrt-rtx-cu13-libs>=1.7,<2", "tensorrt-rtx-cu13-bindings>=1.7,<2"]
EXTRAS = {
    "trt": ["tensorrt>=10.0", "pycuda>=2024.1"],
    "trt-rtx": TRT_RTX,
    # The tests build real engines of every precision with TensorRT for RTX.
    "dev": ["pytest>=8.0", "pytest-xdist>=3.5", *TRT_RTX],
}

setup(
    name="hrnext-trt",
    version="0.1.0",
    description="HRNeXt crowd pose estimation: training, ONNX/FP16/INT8 export, TensorRT engines, "
    "evaluation and benchmarks",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # train/ (the YAML recipes) installs as hrnext_trt/recipes, so the demo's preset travels too.
    packages=find_packages(include=["hrnext_trt", "hrnext_trt.*"]) + ["hrnext_trt.recipes"],
    package_dir={"hrnext_trt.recipes": "train"},
    package_data={"hrnext_trt": _package_data(), "hrnext_trt.recipes": ["*.md", "*.yaml", "*/*.yaml"]},
    install_requires=[
        # A range, never a pin: take the CPU or CUDA build that suits the machine (see README).
        "torch>=2.4",
        "numpy>=1.24",
        # Headless OpenCV with the contrib modules: the same cv2 without GUI libraries servers lack;
        # contrib because OpenCV 5 moved the HOG people detector (predict's default) there. Never
        # install it beside opencv-python(-headless): they share the cv2 folder.
        "opencv-contrib-python-headless>=4.8",
        "pycocotools>=2.0.7",
        # CrowdPose's evaluation (crowd mode). Build from source under numpy 2: see README.
        "xtcocotools>=1.14",
        # MPII's MATLAB files (the release .mat, HRNet's gt_*.mat): `hrnext-trt convert mpii`.
        "scipy>=1.10",
        "pillow>=9.0",  # image sizes from headers when converting (matplotlib needs it anyway)
        "click>=8.1",
        "tqdm>=4.66",
        "pyyaml>=6.0",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
        "onnx>=1.16",
        "onnxslim>=0.1.40",
        # AutoCast (FP16) and Q/DQ post-training quantization (INT8). Brings onnxruntime-gpu,
        # whose CPU provider runs every precision's ONNX on machines without a GPU.
        "nvidia-modelopt[onnx]>=0.33",
    ],
    extras_require=EXTRAS,
    entry_points={"console_scripts": ["hrnext-trt=hrnext_trt.cli:main"]},
)
