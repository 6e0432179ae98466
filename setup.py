"""The one compiled part: the stream's trades-frame scanner (hyperlake/pipelines/stream/_scan.c).

It is optional: where no C compiler is found the install goes on without it and
``hyperlake stream`` parses every frame with msgspec (same bars, fewer trades a second;
``hyperlake stream`` says which in its status file). Everything else is in pyproject.toml.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("hyperlake.pipelines.stream._scan", ["hyperlake/pipelines/stream/_scan.c"],
              optional=True, extra_compile_args=["-O3"], libraries=["m"]),
])
