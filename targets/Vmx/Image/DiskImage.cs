namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// A raw hard-disk image: sector 0 is the boot sector, the kernel (32-bit entry, 64-bit host code,
/// descriptor tables, script) follows from sector 1. The size is padded to whole cylinders of a
/// 16-head, 63-sector geometry so Bochs accepts it as a flat disk.
/// </summary>
public sealed class DiskImage
{
    public const int SectorBytes = 512;
    public const int Heads = 16;
    public const int SectorsPerTrack = 63;
    public const int CylinderBytes = Heads * SectorsPerTrack * SectorBytes;

    private DiskImage(byte[] bytes, int kernelBytes, ulong ramBytes)
    {
        Bytes = bytes;
        KernelBytes = kernelBytes;
        RamBytes = ramBytes;
    }

    /// <summary>RAM the VM must get for this image (the emulators configure exactly this).</summary>
    public ulong RamBytes { get; }

    public int RamMegabytes => (int)(RamBytes >> 20);

    public byte[] Bytes { get; }

    public int KernelBytes { get; }

    public int Cylinders => Bytes.Length / CylinderBytes;

    /// <summary>Builds the whole image around a script.</summary>
    public static DiskImage Build(ScriptBuilder script, ulong ramBytes = KernelLayout.RamBytes) => Build(script.ToBytes(), ramBytes);

    public static DiskImage Build(byte[] script, ulong ramBytes = KernelLayout.RamBytes)
    {
        if (ramBytes < KernelLayout.RamBytes || ramBytes > KernelLayout.MaxRamBytes || (ramBytes & 0xFFFFF) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ramBytes), ramBytes, "whole MiB between 128 MiB and 2 GiB");
        }

        byte[] kernel = BuildKernel(script);
        int sectors = (kernel.Length + SectorBytes - 1) / SectorBytes;
        long total = (long)(1 + sectors) * SectorBytes;
        total = (total + CylinderBytes - 1) / CylinderBytes * CylinderBytes;
        var disk = new byte[total];
        BootSector.Build(sectors).CopyTo(disk, 0);
        kernel.CopyTo(disk, SectorBytes);
        return new DiskImage(disk, kernel.Length, ramBytes);
    }

    /// <summary>The bytes loaded at <see cref="KernelLayout.KernelLoad"/>.</summary>
    public static byte[] BuildKernel(byte[] script)
    {
        long size = KernelLayout.Script - KernelLayout.KernelLoad + (long)script.Length;
        if (KernelLayout.KernelLoad + size > KernelLayout.KernelLoadLimit)
        {
            throw new ImageTooLargeException(
                $"the script needs {script.Length} bytes; at most {KernelLayout.KernelLoadLimit - KernelLayout.Script} fit below the EBDA");
        }

        var kernel = new byte[size];
        ProtectedModeEntry.Build().CopyTo(kernel, 0);
        HostKernel.Build(out ulong[] stubs).CopyTo(kernel, KernelLayout.Code64 - KernelLayout.KernelLoad);
        KernelData.Build(stubs).CopyTo(kernel, KernelLayout.Data - KernelLayout.KernelLoad);
        script.CopyTo(kernel, KernelLayout.Script - KernelLayout.KernelLoad);
        return kernel;
    }
}
