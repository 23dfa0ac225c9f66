#!/usr/bin/env bash
# The device checks in one run, for a session lent an NVIDIA GPU (about 5 minutes): the CUDA
# tests (skipped everywhere else), then the population benchmark on --device cuda, whose
# output goes into issue 12's closing note. Copy its printout with the GPU's name.
#   bash benchmarks/gpu_check.sh            (from the repository root, gradwise installed)
set -uo pipefail
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
python -m pytest -q -rs tests/test_cuda.py
status=$?
python benchmarks/population.py --device cuda
exit $status
