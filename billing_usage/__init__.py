"""The shared core: settings, the warehouse connection, locks and the ops tables every layer uses."""
