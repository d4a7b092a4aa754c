from setuptools import find_packages, setup

setup(
    name="hdm",
    version="0.1.0",
    description="Hierarchical dynamics (HDM, ACM MM 2022) and related image-enhancement systems in PyTorch",
    packages=find_packages(include=["hdm", "hdm.*"]),
    package_data={"hdm.metrics": ["data/*.npz", "data/*.txt", "README.md"], "hdm.web": ["index.html"]},
    entry_points={"console_scripts": ["hdm-train=hdm.cli.train:run", "hdm-test=hdm.cli.test:run",
                                      "hdm-predict=hdm.cli.predict:run", "hdm-evaluate=hdm.cli.evaluate:run",
                                      "hdm-export=hdm.cli.export:run", "hdm-serve=hdm.cli.serve:run"]},
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "numpy",
        "opencv-python-headless",
        "pillow",
        "pyyaml",
        "tensorboard",
        "scikit-image",
        "scipy",
        "tifffile",  # pure Python: the reader decodes uncompressed TIFFs of samples with it (hdm/image_io.py)
        "tqdm",
    ],
    extras_require={
        "torchvision": ["torchvision"],
        "mmcv": ["mmcv>=2.0", "mmengine"],
        # hdm-export, hdm-predict --onnx, hdm-serve (docs/deploy.md)
        "deploy": ["onnx", "onnxscript", "onnxruntime", "flask"],
        # scripts/sweep.py --launcher slurm submits its runs through submitit (docs/cluster.md)
        "cluster": ["submitit>=1.5"],
        # the sweep's plot of PSNR against GMACs and parameters (psnr_cost.png / .pdf)
        "report": ["matplotlib"],
        # the browser test drives Debian's chromium through its chromedriver
        "test": ["pytest", "hypothesis", "ruff==0.17.6", "onnx", "onnxscript", "onnxruntime", "flask", "selenium",
                 "submitit>=1.5", "matplotlib"],
    },
)
