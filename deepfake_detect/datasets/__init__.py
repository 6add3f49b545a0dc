"""The dataset layouts, one module each; deepfake_detect.datasets.discovery.read_dataset picks the one a folder has.

    common.py    Video (one video, its label, original, method, official split) and Listing
    dfdc.py      DFDC: metadata.json, parts, the public test set's labels.csv, the preview's dataset.json
    ffpp.py      FaceForensics++ as downloaded, with its train/val/test.json pair lists
    celebdf.py   Celeb-DF v1/v2 as downloaded, with List_of_testing_videos.txt
    folders.py   real/ + fake/[<method>/] folders, and a plain folder of videos
"""
