"""Gateway operations (spec §2): who the sub-devices are, and bringing them online, binding and unbinding them."""
