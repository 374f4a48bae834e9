"""Layer 2, modeling: the dual encoder and its pooling / heads, backbone loading (hub or the offline
build), fine-tuning modes (full, frozen, LoRA, bottleneck adapters), evaluation-only encoders, export."""
