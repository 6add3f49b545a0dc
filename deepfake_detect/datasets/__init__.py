"""Datasets: finding a dataset's videos and labels (discovery), one module per layout, and stage 02's split.

    discovery.py read_dataset / discover_videos: picks the layout a folder has
    split.py     stage 02's algorithm: a balanced real/fake set split leak-free into train/val/test

    common.py    Video (one video, its label, original, method, official split) and Listing
    dfdc.py      DFDC: metadata.json, parts, the public test set's labels.csv, the preview's dataset.json
    ffpp.py      FaceForensics++ as downloaded, with its train/val/test.json pair lists
    celebdf.py   Celeb-DF v1/v2 as downloaded, with List_of_testing_videos.txt
    folders.py   real/ + fake/[<method>/] folders, and a plain folder of videos
"""
