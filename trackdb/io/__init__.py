"""Files in and out: CTC folders, movie sources, GEFF, napari and table exports."""
