"""Faces: the face detectors (MTCNN, Azure) behind one interface, and the one loop that keeps and crops faces (stages 01, 04, 05)."""
