"""Small helpers shared by the operators and sensors."""
