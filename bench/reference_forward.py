#!/usr/bin/env python3
"""Reference speed of the residual-stream forward in PyTorch + transformers.

Same GGUF as saener (dequantized to float32 by transformers), same sentences, same batching
(batch 1, and batch 16 length-sorted), stopping after block L by truncating the layer list.
Needs `torch`, `transformers` and `gguf` (not installed by saener; optional):

    python3 bench/reference_forward.py --model ~/.cache/saener/models/gemma-3-270m-q4_k_m.gguf \
        --sentences bench/out/sentences.txt --threads 2

`saener bench --write-sentences bench/out/sentences.txt` writes the exact sentences saener
times; bench/side_by_side.sh runs both on one machine in one go.
"""
import argparse
import os
import resource
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--sentences", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", default="9,12")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    folder, name = os.path.split(os.path.abspath(args.model))
    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, torch_dtype=torch.float32)
    model.eval()
    print(f"load: {time.perf_counter() - t0:.2f} s")
    sentences = [line.rstrip("\n") for line in open(args.sentences, encoding="utf-8") if line.strip()]
    all_layers = model.model.layers

    for layer in [int(x) for x in args.layers.split(",")]:
        model.model.layers = all_layers[: layer + 1]
        for batch_size in (1, 16):
            order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
            tokens = 0
            t0 = time.perf_counter()
            with torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    batch = [sentences[i] for i in order[start : start + batch_size]]
                    enc = tokenizer(batch, return_tensors="pt", padding=True)
                    model.model(**enc)
                    tokens += int(enc["attention_mask"].sum())
            elapsed = time.perf_counter() - t0
            print(f"layer {layer:2} batch {batch_size:2}: {tokens / elapsed:8.0f} tok/s ({tokens} tokens, {elapsed:.1f} s)")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    print(f"peak RSS: {rss:.2f} GiB")


if __name__ == "__main__":
    main()
