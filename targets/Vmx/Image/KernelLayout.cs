namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// Where everything lives in the VM's physical memory. The VM has 128 MiB of RAM (boot time grows
/// with RAM under Bochs). Everything the kernel itself uses sits below <see cref="PoolStart"/>, so a
/// relocated case page can never land on it.
/// </summary>
public static class KernelLayout
{
    /// <summary>RAM of the VM for most cases (Bochs' boot time grows with RAM).</summary>
    public const ulong RamBytes = 128UL << 20;

    /// <summary>
    /// A 1 GiB EPT leaf needs a 1 GiB-aligned host range: cases with one get RAM past 1 GiB, and
    /// every 1 GiB leaf points at <see cref="GigabyteBlock"/>; only the pages probes touch are used.
    /// </summary>
    public const ulong GigabyteBlock = 1UL << 30;
    public const ulong MaxRamBytes = 2UL << 30;

    public const ulong BootSectorAddress = 0x7C00;

    /// <summary>The boot sector's INT 13h disk-address packet and saved drive number.</summary>
    public const ushort DiskAddressPacket = 0x0600;
    public const ushort BootDrive = 0x05F0;

    /// <summary>The boot sector reads the kernel (sector 1 on) to this address: below 640 KiB, reachable from real mode.</summary>
    public const uint KernelLoad = 0x10000;
    /// <summary>The kernel image may not grow past conventional memory (the EBDA starts near 0x9F000).</summary>
    public const uint KernelLoadLimit = 0x9F000;

    /// <summary>32-bit protected-mode entry (the first byte of the loaded kernel).</summary>
    public const uint Entry32 = KernelLoad;
    public const uint Entry32Size = 0x1000;
    /// <summary>64-bit host code.</summary>
    public const uint Code64 = Entry32 + Entry32Size;
    public const uint Code64Size = 0x6000;
    /// <summary>Kernel data: GDT, TSS, IDT and their pseudo-descriptors.</summary>
    public const uint Data = Code64 + Code64Size;
    public const uint DataSize = 0x1000;
    /// <summary>The script (the case as a list of commands) starts here and runs to the end of the image.</summary>
    public const uint Script = Data + DataSize;

    public const uint Gdt = Data;
    public const uint GdtPointer = Data + 0x80;
    public const uint IdtPointer = Data + 0x90;
    public const uint Tss = Data + 0x100;
    public const uint Idt = Data + 0x400;
    public const int IdtVectors = 32;

    // Segment selectors shared by the boot sector's and the kernel's GDT.
    public const ushort Code32Selector = 0x08;
    public const ushort DataSelector = 0x10;
    public const ushort Code64Selector = 0x18;
    public const ushort TssSelector = 0x28;

    // Runtime area above 1 MiB (zeroed by the 32-bit entry, never part of the image).
    public const uint HostPml4 = 0x100000;
    public const uint HostPdpt = 0x101000;
    /// <summary>Four page directories: the host identity-maps 4 GiB with 2 MiB pages (RAM above 1 GiB backs 1 GiB EPT leaves).</summary>
    public const uint HostPd = 0x102000;
    public const int HostPdCount = 4;
    public const uint VmxonRegion = 0x106000;
    public const uint Vmcs = 0x107000;
    /// <summary>EPT tables of the window (see <see cref="Window"/>): a PDPT and a PD with one 2 MiB leaf.</summary>
    public const uint WindowEptPdpt = 0x108000;
    public const uint WindowEptPd = 0x109000;
    /// <summary>Kernel variables (see <see cref="KernelVariables"/>).</summary>
    public const uint Variables = 0x10A000;
    /// <summary>The host stack: 0x10B000 up to here.</summary>
    public const uint StackTop = 0x110000;
    public const uint RuntimeEnd = StackTop;

    /// <summary>
    /// Host-physical 2 MiB block that backs the guest's own code and page tables. The case's EPT
    /// reaches it through one entry the oracle adds in a slot the case never uses (a PML4 slot, or a
    /// PDPT slot when every PML4 slot is taken); guest-linear = guest-physical there.
    /// </summary>
    public const ulong Window = 0x200000;
    public const ulong WindowSize = 0x200000;
    public const ulong WindowCode = 0x0000;
    /// <summary>
    /// The guest PDPT that maps the window into the case's own guest paging (gva probes): entry 0 a
    /// user 1 GiB page, entry 1 a supervisor alias of the same guest-physical range (for SMEP). The
    /// stubs never push, so the guest's RSP (the top of this page) is never used.
    /// </summary>
    public const ulong WindowCasePagingPdpt = 0x1000;
    public const ulong WindowGuestPml4 = 0x2000;
    /// <summary>Guest PDPT pages of the identity map start here (one per 512 GiB region the probes touch).</summary>
    public const ulong WindowGuestPdpts = 0x3000;

    /// <summary>Where <see cref="ScriptOp.Plant"/> saves the bytes it overwrites: 8 bytes per tagged page.</summary>
    public const ulong PlantSave = 0x400000;
    public const ulong PlantSaveSize = 0x200000;

    /// <summary>Relocated case pages come from here to the end of RAM.</summary>
    public const ulong PoolStart = 0x600000;
}

/// <summary>Offsets of the kernel's variables inside <see cref="KernelLayout.Variables"/>.</summary>
internal static class KernelVariables
{
    public const uint ScriptPointer = KernelLayout.Variables + 0x00;
    public const uint Launched = KernelLayout.Variables + 0x08;
    public const uint Step = KernelLayout.Variables + 0x10;
    public const uint GuestRbx = KernelLayout.Variables + 0x18;
    /// <summary>INVEPT descriptor: {EPTP, 0}, 16 bytes.</summary>
    public const uint InveptDescriptor = KernelLayout.Variables + 0x20;
    public const uint VmxBasic = KernelLayout.Variables + 0x30;
    public const uint VmxonPointer = KernelLayout.Variables + 0x38;
    public const uint VmcsPointer = KernelLayout.Variables + 0x40;
}
