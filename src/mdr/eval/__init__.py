"""Layer 3, evaluation: ranking metrics, LAReQA and qrels scoring from embeddings, the suite that encodes
and scores a list of sets, and the run folder's evaluation outputs."""
