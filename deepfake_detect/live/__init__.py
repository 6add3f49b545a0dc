"""Live scoring of a camera, a stream or a video call (issue 26): source.py reads the newest
frame, frames.py finds, follows and scores one frame's faces, detection.py runs the detector
beside the loop, session.py keeps each person's recent P(fake) and judges it, events.py holds
what is reported, stream.py ties them into a stream of updates, output.py shows and writes them,
command.py is 04-detect_deepfakes.py --live, web.py the page's /live view."""
