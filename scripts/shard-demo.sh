#!/usr/bin/env bash
# Sharded features and evaluation as a cluster scheduler runs them, on one machine: N processes that see the
# environment a Kubernetes Indexed Job (JOB_COMPLETION_INDEX + the manifest's GAPCAM_SHARD_COUNT) or a Slurm array
# (SLURM_ARRAY_TASK_ID/_MIN/_MAX/_COUNT) gives its tasks, then `gapcam merge`, then the same commands unsharded, and a
# comparison of the two outputs. Run from the repository root:
#
#   bash scripts/shard-demo.sh            # N=3 shards, darknet-tiny on the first 30 wild2 test photos
#   N=4 LIMIT=109 bash scripts/shard-demo.sh
set -euo pipefail
N=${N:-3}
LIMIT=${LIMIT:-30}
OUT=${OUT:-$(mktemp -d /tmp/gapcam-shard-demo.XXXXXX)}
CLI=(node --import tsx src/cli.ts)   # after `npm run build`: CLI=(npx gapcam)
MODEL=../shared/models/darknet-tiny
DATA=(--dataset wild2 --data-root ../shared/datasets --split test --limit "$LIMIT")
CLASS_MAP='kangaroo=wallaby,raccoon=lesser panda'

# Starts one process per shard with the environment its scheduler would give it; fails if any of them fails.
run_shards() {
  local scheduler=$1; shift
  local pids=()
  for ((i = 0; i < N; i++)); do
    if [[ $scheduler == kubernetes ]]; then
      JOB_COMPLETION_INDEX=$i GAPCAM_SHARD_COUNT=$N "${CLI[@]}" "$@" > "$OUT/log-$scheduler-$i.txt" 2>&1 &
    else
      SLURM_ARRAY_TASK_ID=$i SLURM_ARRAY_TASK_MIN=0 SLURM_ARRAY_TASK_MAX=$((N - 1)) SLURM_ARRAY_TASK_COUNT=$N "${CLI[@]}" "$@" > "$OUT/log-$scheduler-$i.txt" 2>&1 &
    fi
    pids+=($!)
  done
  local failed=0
  for ((i = 0; i < N; i++)); do wait "${pids[$i]}" || { echo "shard $i failed:"; cat "$OUT/log-$scheduler-$i.txt"; failed=1; }; done
  grep -h '— shard ' "$OUT"/log-"$scheduler"-*.txt | sed 's/^engine .* — /  engine line: … /'
  return $failed
}

echo "== Kubernetes Indexed Job: features, $N pods"
run_shards kubernetes features "$MODEL" "${DATA[@]}" --out "$OUT/k8s-features"
"${CLI[@]}" merge "$OUT/k8s-features"

echo "== Slurm array: evaluate, $N tasks"
run_shards slurm evaluate "$MODEL" "${DATA[@]}" --class-map "$CLASS_MAP" --out "$OUT/slurm-eval"
"${CLI[@]}" merge "$OUT/slurm-eval" | head -3

echo "== the same, unsharded"
"${CLI[@]}" features "$MODEL" "${DATA[@]}" --out "$OUT/whole-features" > /dev/null 2>&1
"${CLI[@]}" evaluate "$MODEL" "${DATA[@]}" --class-map "$CLASS_MAP" --out "$OUT/whole-eval" > /dev/null 2>&1

echo "== comparison"
cmp "$OUT/k8s-features/index.csv" "$OUT/whole-features/index.csv" && echo "index.csv identical"
cmp "$OUT/slurm-eval/per-image.csv" "$OUT/whole-eval/per-image.csv" && echo "per-image.csv identical"
node --input-type=module - "$OUT" <<'EOF'
import fs from 'node:fs';
const out = process.argv[2];
const npy = (f) => {
  const b = fs.readFileSync(f);
  const start = 10 + b.readUInt16LE(8);
  return new Float32Array(b.buffer.slice(b.byteOffset + start, b.byteOffset + b.length));
};
const [a, b] = [npy(`${out}/whole-features/features.npy`), npy(`${out}/k8s-features/features.npy`)];
let diff = 0, scale = 0;
for (let i = 0; i < a.length; i++) { diff = Math.max(diff, Math.abs(a[i] - b[i])); scale = Math.max(scale, Math.abs(a[i])); }
console.log(`features.npy: ${a.length} values, largest difference ${diff} (${(diff / scale).toExponential(1)} of the largest value)`);
const metrics = (d) => JSON.stringify(JSON.parse(fs.readFileSync(`${out}/${d}/evaluation.json`, 'utf8')).metrics);
console.log(`evaluation.json metrics ${metrics('whole-eval') === metrics('slurm-eval') ? 'identical' : 'DIFFER'}`);
if (metrics('whole-eval') !== metrics('slurm-eval')) process.exit(1);
EOF
echo "outputs in $OUT"
