// Optimizers with per-parameter learning-rate multipliers and weight decay, and state that can be saved and
// restored by stable parameter keys (`<layer>/<weight>`), so momentum survives --resume even though tfjs renames
// variables when a model is loaded twice in one process.
//
// SGD:  g' = g + wd·w;  v ← μ·v + g';  w ← w − lr·m·v   (Nesterov: w ← w − lr·m·(g' + μ·v)); plain SGD when μ = 0.
//       This is the tfjs / PyTorch convention (tf.train.momentum gives the same numbers; a test checks it).
// Adam: the tfjs / Keras formula, w ← w − lr·m · m̂ / (√v̂ + ε), with m̂ = m/(1−β1^t), v̂ = v/(1−β2^t), t counted
//       per parameter (a layer unfrozen later starts at t = 1). Weight decay is classic L2 (added to g).
import * as tf from '@tensorflow/tfjs';
import type { OptimizerConfig } from '../recipes/schema.js';

/** One trainable parameter as the optimizer sees it. */
export interface Param {
  /** Stable name: `<layer name>/<weight name>`. */
  key: string;
  variable: tf.Variable;
  /** Learning-rate multiplier (1 = the base rate). */
  lrMult: number;
  /** L2 weight-decay coefficient for this parameter. */
  decay: number;
}

export interface SlotSpec {
  key: string;
  slot: string;
  shape: number[];
}

/** A serialisable optimizer state: JSON-able header plus one Float32Array holding every slot in order. */
export interface OptimizerState {
  type: OptimizerConfig['type'];
  /** Updates applied so far, per parameter key. */
  counts: Record<string, number>;
  slots: SlotSpec[];
  values: Float32Array;
}

export class TrainOptimizer {
  private readonly slots = new Map<string, Map<string, tf.Variable>>();
  private readonly counts = new Map<string, number>();

  constructor(readonly config: OptimizerConfig) {}

  private slotNames(): string[] {
    if (this.config.type === 'adam') return ['m', 'v'];
    return this.config.momentum > 0 ? ['velocity'] : [];
  }

  private slotsOf(p: Param): Map<string, tf.Variable> {
    let s = this.slots.get(p.key);
    if (!s) {
      s = new Map();
      for (const name of this.slotNames()) s.set(name, tf.tidy(() => tf.variable(tf.zerosLike(p.variable), false)));
      this.slots.set(p.key, s);
    }
    return s;
  }

  /** Applies one update to every parameter that has a gradient in `grads` (keyed by Param.key). */
  apply(params: readonly Param[], grads: ReadonlyMap<string, tf.Tensor>, lr: number): void {
    const c = this.config;
    for (const p of params) {
      const g0 = grads.get(p.key);
      if (!g0) continue;
      const slots = this.slotsOf(p);
      const t = (this.counts.get(p.key) ?? 0) + 1;
      this.counts.set(p.key, t);
      const rate = lr * p.lrMult;
      tf.tidy(() => {
        const w = p.variable;
        const g = p.decay > 0 ? tf.add(g0, tf.mul(w, p.decay)) : g0;
        if (c.type === 'sgd') {
          if (c.momentum > 0) {
            const v = slots.get('velocity')!;
            const nv = tf.add(tf.mul(v, c.momentum), g);
            v.assign(nv);
            const step = c.nesterov ? tf.add(g, tf.mul(nv, c.momentum)) : nv;
            w.assign(tf.sub(w, tf.mul(step, rate)));
          } else {
            w.assign(tf.sub(w, tf.mul(g, rate)));
          }
        } else {
          const m = slots.get('m')!;
          const v = slots.get('v')!;
          const nm = tf.add(tf.mul(m, c.beta1), tf.mul(g, 1 - c.beta1));
          const nv = tf.add(tf.mul(v, c.beta2), tf.mul(tf.square(g), 1 - c.beta2));
          m.assign(nm);
          v.assign(nv);
          const mHat = tf.div(nm, 1 - Math.pow(c.beta1, t));
          const vHat = tf.div(nv, 1 - Math.pow(c.beta2, t));
          w.assign(tf.sub(w, tf.mul(tf.div(mHat, tf.add(tf.sqrt(vHat), c.epsilon)), rate)));
        }
      });
    }
  }

  async getState(): Promise<OptimizerState> {
    const specs: SlotSpec[] = [];
    const arrays: Float32Array[] = [];
    for (const [key, slots] of [...this.slots.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      for (const [slot, v] of slots) {
        specs.push({ key, slot, shape: v.shape });
        arrays.push((await v.data()) as Float32Array);
      }
    }
    const total = arrays.reduce((n, a) => n + a.length, 0);
    const values = new Float32Array(total);
    let off = 0;
    for (const a of arrays) {
      values.set(a, off);
      off += a.length;
    }
    return { type: this.config.type, counts: Object.fromEntries(this.counts), slots: specs, values };
  }

  /** Restores a saved state; slots of parameters not in `params` are an error (the model changed). */
  setState(state: OptimizerState, params: readonly Param[]): void {
    if (state.type !== this.config.type) {
      throw new Error(`optimizer state is for '${state.type}', the recipe uses '${this.config.type}'`);
    }
    const byKey = new Map(params.map((p) => [p.key, p]));
    this.disposeSlots();
    let off = 0;
    for (const spec of state.slots) {
      const p = byKey.get(spec.key);
      const size = spec.shape.reduce((a, b) => a * b, 1);
      if (!p) throw new Error(`optimizer state names parameter '${spec.key}', which the model does not have`);
      if (p.variable.shape.join('x') !== spec.shape.join('x')) {
        throw new Error(`optimizer state for '${spec.key}' has shape [${spec.shape}], the model's is [${p.variable.shape}]`);
      }
      let slots = this.slots.get(spec.key);
      if (!slots) this.slots.set(spec.key, (slots = new Map()));
      const values = state.values.subarray(off, off + size);
      slots.set(spec.slot, tf.tidy(() => tf.variable(tf.tensor(values, spec.shape, 'float32'), false)));
      off += size;
    }
    if (off !== state.values.length) throw new Error(`optimizer state holds ${state.values.length} values, its manifest ${off}`);
    this.counts.clear();
    for (const [k, n] of Object.entries(state.counts)) this.counts.set(k, n);
  }

  private disposeSlots(): void {
    for (const slots of this.slots.values()) for (const v of slots.values()) v.dispose();
    this.slots.clear();
  }

  dispose(): void {
    this.disposeSlots();
    this.counts.clear();
  }
}
