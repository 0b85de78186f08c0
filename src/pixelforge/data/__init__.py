"""The data layer: layouts → Manifest → decoded arrays → Preprocess."""
