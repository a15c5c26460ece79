print("meshctl")
