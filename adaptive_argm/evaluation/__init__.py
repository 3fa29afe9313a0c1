"""Evaluation around the method: controlled degradations, corpora, the paired benchmark, the
eval suite over prompt sets, the HTML listening report, generation and the built-in demo."""
