"""Model definitions (no training loops, no adapters: see DESIGN.md section 2)."""
