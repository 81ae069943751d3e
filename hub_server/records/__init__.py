"""What the hub keeps and for how long: ``retention`` rolls flow windows up and purges what is due."""
