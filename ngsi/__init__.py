"""NGSI payload formats (NGSIv2, legacy NGSIv1, NGSI-LD) and the Orion client."""
