"""What an attribute-specific index costs, and what shrinking it loses (notebook 10).

    python scripts/index_tradeoff.py                   # quick profile, seed 0
    python scripts/index_tradeoff.py --gallery 200000  # a larger timing gallery

1. Size against MAP. ASEN (one vector per attribute per image) with its test candidates stored
   as float32, float16, int8 and product-quantised at several sizes (codecs trained on the
   training split's embeddings), and CSN's alternative: one general vector per image,
   re-weighted by the attribute's mask at query time. MAP is the protocol's test MAP with the
   stored (decoded) candidates and exact float32 queries.
2. Query time on a gallery of ``--gallery`` vectors of one attribute (the test candidates
   replicated with small noise and re-normalised), ``--queries`` queries, top 10, one thread:
   each codec through faiss, beside exact float32 search with a torch matrix product and
   top-k, and the matrix product alone (the floor of exact search).

Writes ``results/10_index.json`` (config, seed, device, commit) and ``figures/10_index_tradeoff.png``.
Checkpoints come from ``train_or_load``, so notebook 06's seed-0 runs are reused.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fgfs_lib import config, data as data_module, evaluate, metrics, train, utils, viz
from fgfs_lib.index import AttributeIndex, SharedVectorIndex

ROOT = Path(__file__).resolve().parent.parent


def test_embeddings(model, data):
    """Query and candidate embeddings of the test protocol, and per-attribute training vectors."""
    queries, candidates = data.test_queries, data.test_candidates
    emb = evaluate.embed_pairs(model, data.test, torch.cat([queries, candidates]))
    labels = data.train.labels
    train_rows = torch.nonzero(labels >= 0)  # (image, attribute) pairs of the training split
    keep = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(0))[:20000]
    train_emb = evaluate.embed_pairs(model, data.train, train_rows[keep])
    return emb[: len(queries)], emb[len(queries):], train_rows[keep], train_emb


def map_with(q_emb, c_emb, data, distance):
    q, c = data.test_queries, data.test_candidates
    return metrics.mean_average_precision(q_emb, q[:, 1], q[:, 2], c_emb, c[:, 1], c[:, 2], distance=distance)


def codec_rows(model, data, num_attributes: int, pq_shapes) -> list[dict]:
    """Per codec: bytes per image (all attributes) and test MAP with decoded candidates."""
    q_emb, c_emb, train_rows, train_emb = test_embeddings(model, data)
    cand_attr = data.test_candidates[:, 1]
    exact = map_with(q_emb, c_emb, data, model.distance)
    rows = [{"method": "ASEN", "codec": "float32", "bytes_per_image": num_attributes * 4 * c_emb.shape[1],
             "map": exact["overall"], "per_attribute": exact["per_attribute"]}]
    for codec, pieces, bits in [("float16", None, None), ("int8", None, None)] + [("pq", p, b) for p, b in pq_shapes]:
        decoded, per_vector = c_emb.clone(), 0
        for a in range(num_attributes):
            index = AttributeIndex(codec, model.distance, pq_pieces=pieces, pq_bits=bits)
            index.add(a, c_emb[cand_attr == a], train_vectors=train_emb[train_rows[:, 1] == a])
            decoded[cand_attr == a] = index.decode(a)
            per_vector = index.bytes_per_vector(a)
        result = map_with(q_emb, decoded, data, model.distance)
        name = codec if codec != "pq" else f"pq {pieces}x{bits}b"
        rows.append({"method": "ASEN", "codec": name, "bytes_per_image": num_attributes * per_vector,
                     "map": result["overall"], "per_attribute": result["per_attribute"],
                     "map_loss": exact["overall"] - result["overall"]})
    return rows


def shared_rows(csn, data) -> list[dict]:
    """CSN: per-attribute vectors against one general vector per image with masks at query time."""
    q, c = data.test_queries, data.test_candidates
    general = lambda split, idx: csn.general_embedding(csn.features(split.batch_on(idx, utils.device()))).float().cpu()
    with torch.no_grad():
        q_gen = torch.cat([general(data.test, q[i:i + 256, 0]) for i in range(0, len(q), 256)])
        c_gen = torch.cat([general(data.test, c[i:i + 256, 0]) for i in range(0, len(c), 256)])
        masks = csn.masks().detach().float().cpu()
    exact = map_with(*(evaluate.embed_pairs(csn, data.test, torch.cat([q, c])).split([len(q), len(c)])), data, "euclidean")
    rows = [{"method": "CSN", "codec": "float32 per attribute", "bytes_per_image": masks.shape[0] * 4 * masks.shape[1],
             "map": exact["overall"], "per_attribute": exact["per_attribute"]}]
    for codec in ("float32", "float16", "int8"):
        shared = SharedVectorIndex(masks, c_gen, codec=codec)
        # rank each query's candidates of its attribute with the masked distance (as CSN is trained)
        q_emb = q_gen * masks[q[:, 1]]
        c_emb = shared.vectors * masks[c[:, 1]]
        result = map_with(q_emb, c_emb, data, "euclidean")
        rows.append({"method": "CSN", "codec": f"{codec} shared", "bytes_per_image": shared.bytes_per_vector(),
                     "map": result["overall"], "per_attribute": result["per_attribute"],
                     "map_loss": exact["overall"] - result["overall"]})
    return rows


def timing(c_emb, dim: int, gallery: int, queries: int, pq_shapes, repeats: int = 3) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    base = c_emb[torch.randint(len(c_emb), (gallery,), generator=g)]
    vectors = F.normalize(base + 0.02 * torch.randn(gallery, dim, generator=g), dim=1)
    q = F.normalize(c_emb[torch.randint(len(c_emb), (queries,), generator=g)], dim=1)

    def best_of(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    rows = [
        {"codec": "matrix product alone (float32)", "seconds": best_of(lambda: q @ vectors.T), "bytes_per_vector": 4 * dim},
        {"codec": "torch exact (float32, matmul + top-k)", "seconds": best_of(lambda: (q @ vectors.T).topk(10, dim=1)),
         "bytes_per_vector": 4 * dim},
    ]
    for codec, pieces, bits in [("float32", None, None), ("float16", None, None), ("int8", None, None)] + \
            [("pq", p, b) for p, b in pq_shapes]:
        index = AttributeIndex(codec, "cosine", pq_pieces=pieces, pq_bits=bits)
        index.add(0, vectors)
        name = f"faiss {codec}" if codec != "pq" else f"faiss pq {pieces}x{bits}b"
        rows.append({"codec": name, "seconds": best_of(lambda: index.search(q, 0, k=10)),
                     "bytes_per_vector": index.bytes_per_vector(0)})
    for row in rows:
        row["ms_per_query"] = 1000 * row["seconds"] / queries
        row["gallery_mb"] = row["bytes_per_vector"] * gallery / 2**20
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gallery", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=256)
    parser.add_argument("--out", default=str(ROOT / "results" / "10_index.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    import faiss

    faiss.omp_set_num_threads(1)
    cfg = config.load(seed=args.seed)
    data = data_module.load("fashionsynth", cfg=cfg)
    model = train.train_or_load("asen", data, cfg).model
    csn = train.train_or_load("csn", data, cfg).model
    dim = model.embed_dim
    pq_shapes = [(dim // 4, 8), (dim // 8, 8), (dim // 16, 8)]
    started = time.time()
    sizes = codec_rows(model, data, data.meta.num_attributes, pq_shapes) + shared_rows(csn, data)
    _, c_emb, _, _ = test_embeddings(model, data)
    times = timing(c_emb, dim, args.gallery, args.queries, pq_shapes)
    report = {"what": "index size against test MAP, and query time on a replicated gallery",
              "profile": cfg.profile, "seeds": [args.seed], "gallery": args.gallery, "queries": args.queries,
              "threads": 1, "embed_dim": dim, "num_attributes": data.meta.num_attributes,
              "attribute_names": list(data.meta.attribute_names), "data_config": data.config,
              "sizes": sizes, "query_time": times, "seconds": time.time() - started,
              "env": utils.env_report(cfg), "command": "python scripts/index_tradeoff.py"}
    utils.atomic_write_json(args.out, report)
    fig = viz.metrics.size_tradeoff(sizes)
    viz.save(fig, "10_index_tradeoff", cfg)
    for row in sizes:
        print(f"{row['method']:<4} {row['codec']:<24} {row['bytes_per_image']:>6} B/image  MAP {row['map']:.2f}")
    for row in times:
        print(f"{row['codec']:<40} {row['ms_per_query']:.3f} ms/query  {row['gallery_mb']:.1f} MB")


if __name__ == "__main__":
    main()
