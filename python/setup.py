"""The build of the shmmap package's C extension (the rest is in
pyproject.toml). Only setuptools and a C compiler: no other dependency."""

from setuptools import Extension, setup

setup(
    packages=["shmmap"],
    ext_modules=[
        Extension(
            "shmmap._native",
            sources=["shmmap/_native.c"],
            extra_compile_args=["-std=gnu11", "-O2"],
        )
    ],
)
