namespace EptFuzz.Targets.Vmx.Image;

/// <summary>The case does not fit into one boot image (too many commands); the session reports it as unsupported.</summary>
public sealed class ImageTooLargeException(string message) : Exception(message);
