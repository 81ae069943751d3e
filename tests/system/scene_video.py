"""Writes the synthetic demo scene as a video file, for timing `edge-agent count` where no camera is.

python scene_video.py OUT.avi FRAMES        (run with the agent's venv: it needs edge_agent and cv2)
"""

import sys

import cv2

from edge_agent.counting.sources import demo_scene

scene = demo_scene(640, 480, 10.0)
frames = min(int(sys.argv[2]), scene.length)
out = cv2.VideoWriter(sys.argv[1], cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
for index in range(frames):
    out.write(scene.render(index))
out.release()
print(frames)
