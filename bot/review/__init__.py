"""The review domain: policy (model, load, route), ingest, decisions (first click wins), people, edit distance."""
