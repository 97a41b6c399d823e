#!/usr/bin/env python3
"""Keras 3 / TensorFlow peer for `npm run bench`: VGG16-GAP (Keras VGG16 up to block5_conv3, conv 3x3/1024 + ReLU,
GAP, dense 200), random weights, NHWC float32.

Measures one phase per process (so peak resident memory belongs to that phase):
  --phase infer   images/s of model.predict_on_batch (a compiled tf.function graph)
  --phase train   images/s of model.train_on_batch (SGD momentum 0.9, sparse categorical cross-entropy, full backward)
Each figure is the median of --runs timed calls after --warmup untimed ones. Prints one JSON line on stdout.
"""
import os, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_common import measure_and_print, parse_args

a = parse_args(lambda p: p.add_argument('--jit', choices=['auto', 'on', 'off'], default='auto', help="Keras compile(jit_compile=...)"))

# Thread counts must be fixed before TensorFlow starts its thread pools.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
os.environ['TF_NUM_INTRAOP_THREADS'] = str(a.threads)
os.environ['TF_NUM_INTEROP_THREADS'] = str(a.threads)
os.environ.setdefault('KERAS_BACKEND', 'tensorflow')

import numpy as np
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(a.threads)
tf.config.threading.set_inter_op_parallelism_threads(a.threads)
import keras
from keras import layers


def build():
    keras.utils.set_random_seed(1)
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(a.size, a.size, 3))
    x = base.get_layer('block5_conv3').output
    x = layers.Conv2D(1024, 3, padding='same', activation='relu', name='cam_conv')(x)
    x = layers.GlobalAveragePooling2D(name='gap')(x)
    out = layers.Dense(a.classes, activation='softmax', name='predictions')(x)
    return keras.Model(base.input, out, name='vgg16_gap')


model = build()
jit = {'auto': 'auto', 'on': True, 'off': False}[a.jit]
model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9),
              loss='sparse_categorical_crossentropy', jit_compile=jit)
rng = np.random.default_rng(0)
x = rng.uniform(-120, 150, size=(a.batch, a.size, a.size, 3)).astype('float32')
y = rng.integers(0, a.classes, size=(a.batch,)).astype('int32')

if a.phase == 'infer':
    step = lambda: model.predict_on_batch(x)
else:
    step = lambda: model.train_on_batch(x, y)

measure_and_print(
    a, step, 'keras', threads=a.threads, params=model.count_params(),
    engine=f'TensorFlow {tf.__version__} (Keras {keras.__version__}, compiled tf.function, jit_compile={getattr(model, "jit_compile", jit)})')
