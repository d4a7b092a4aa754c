"""Running exported models without torch: the ONNX Runtime session with its input contract
(onnx_model), the checks of an exported file against its .json description (description) and HDM's
DCP region masks in NumPy (dcp_masks). Nothing in this package imports torch; exporting is hdm.export."""
