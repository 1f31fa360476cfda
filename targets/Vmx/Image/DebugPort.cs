namespace EptFuzz.Targets.Vmx.Image;

/// <summary>I/O ports the image talks to.</summary>
public static class DebugPort
{
    /// <summary>Bochs' port_e9_hack and QEMU's isa-debugcon.</summary>
    public const ushort Console = 0xE9;
    /// <summary>QEMU isa-debug-exit (iobase=0xf4, iosize=4): status = (value &lt;&lt; 1) | 1.</summary>
    public const ushort QemuExit = 0xF4;
    /// <summary>Bochs' unmapped-port device stops the simulation when it reads "Shutdown" here.</summary>
    public const ushort BochsShutdown = 0x8900;
}
