#!/usr/bin/env bash
# Installs the benchmark peers for `npm run bench` (idempotent; safe to rerun).
#  - Keras 3 on TensorFlow 2.21 (tensorflow-cpu==2.21.0 + keras) in a Python venv at bench/.venv, from pip's own
#    configured indexes (pip reads its config; no index is named here).
#  - PyTorch 2.x (CPU wheel) in a second venv at bench/.venv-torch, from pip's configured indexes and find-links.
# A peer that cannot be installed is reported and skipped; the script still exits 0 so the bench runs the rest.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/bench/.venv"
say() { echo "[gapcam bench setup] $*"; }

# ---- Keras 3 / TensorFlow 2.21 ------------------------------------------------------------------------------
keras_ok() { "$venv/bin/python" -c 'import tensorflow as tf, keras; assert tf.__version__.startswith("2.21"), tf.__version__; print("tensorflow", tf.__version__, "keras", keras.__version__)' 2>/dev/null; }
if keras_ok >/dev/null; then
  say "keras peer ready: $(keras_ok)"
else
  py=""
  for cand in /usr/bin/python3 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' 2>/dev/null; then py="$cand"; break; fi
  done
  if [ -z "$py" ]; then
    say "keras peer NOT installed: no python3 with the venv module (apt-get install python3-venv)"
  else
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    if "$venv/bin/python" -m pip install --disable-pip-version-check --retries 0 --timeout 15 \
         'tensorflow-cpu==2.21.0' keras; then
      if keras_ok >/dev/null; then say "keras peer ready: $(keras_ok)"; else say "keras peer NOT usable: tensorflow/keras do not import in $venv"; fi
    else
      say "keras peer NOT installed: pip could not install tensorflow-cpu==2.21.0 + keras from its configured indexes"
    fi
  fi
fi

# ---- PyTorch 2.x (pip) -----------------------------------------------------------------------------------------
# A current PyTorch CPU wheel from pip's configured indexes / find-links, in its own venv (bench/.venv-torch) so its
# numpy pin cannot disturb the Keras venv. No torchvision: bench/torch_vgg_gap.py builds VGG16 itself.
tvenv="$root/bench/.venv-torch"
torch_ok() { "$tvenv/bin/python" -c 'import torch; assert int(torch.__version__.split(".")[0]) >= 2, torch.__version__; print("torch", torch.__version__)' 2>/dev/null; }
if torch_ok >/dev/null; then
  say "torch peer ready: $(torch_ok)"
elif [ -z "${py:-}" ] && ! py=$(command -v python3); then
  say "torch peer NOT installed: no python3"
else
  [ -x "$tvenv/bin/python" ] || "${py:-python3}" -m venv "$tvenv"
  if "$tvenv/bin/python" -m pip install --disable-pip-version-check --retries 0 --timeout 15 'torch>=2' numpy; then
    if torch_ok >/dev/null; then say "torch peer ready: $(torch_ok)"; else say "torch peer NOT usable: torch does not import in $tvenv"; fi
  else
    say "torch peer NOT installed: pip could not install torch>=2 from its configured indexes"
  fi
fi
exit 0
