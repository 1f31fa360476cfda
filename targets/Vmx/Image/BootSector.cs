using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// The 512-byte BIOS boot sector: enables A20, reads the kernel from the boot disk with INT 13h
/// extended reads (AH=42h) to <see cref="KernelLayout.KernelLoad"/>, loads a flat GDT, enters
/// 32-bit protected mode and jumps to the kernel's first byte. The same disk boots Bochs and QEMU.
/// </summary>
public static class BootSector
{
    public const int Size = 512;
    /// <summary>Sectors read per INT 13h call; 64 keeps every transfer inside one 64 KiB segment step.</summary>
    private const int SectorsPerRead = 64;
    private const int GdtOffset = 0x1A0;
    private const int GdtPointerOffset = 0x1C0;

    /// <summary>The flat GDT of the boot sector; the kernel installs its own (with a TSS) in 64-bit mode.</summary>
    public static readonly ulong[] GdtEntries =
    [
        0,
        0x00CF9A000000FFFF, // 0x08: 32-bit code, base 0, limit 4 GiB
        0x00CF92000000FFFF, // 0x10: data, base 0, limit 4 GiB
        0x00AF9A000000FFFF, // 0x18: 64-bit code (L = 1, D = 0)
    ];

    public static byte[] Build(int kernelSectors)
    {
        if (kernelSectors <= 0 || (long)kernelSectors * 512 > KernelLayout.KernelLoadLimit - KernelLayout.KernelLoad)
        {
            throw new ArgumentOutOfRangeException(nameof(kernelSectors), kernelSectors, "the kernel must fit between 64 KiB and the EBDA");
        }

        var a = new Assembler(16);
        var readLoop = a.CreateLabel();
        var countOk = a.CreateLabel();
        var fail = a.CreateLabel();
        var done = a.CreateLabel();
        const ushort dap = KernelLayout.DiskAddressPacket;

        a.cli();
        a.xor(ax, ax);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(sp, (ushort)KernelLayout.BootSectorAddress);
        a.mov(__byte_ptr[KernelLayout.BootDrive], dl);
        // Fast A20 (port 0x92 bit 1), never touching bit 0 (reset).
        a.@in(al, 0x92);
        a.or(al, 2);
        a.and(al, 0xFE);
        a.@out(0x92, al);

        a.mov(__word_ptr[dap], 0x0010);          // packet size 16, reserved 0
        a.mov(__word_ptr[dap + 4], 0);           // buffer offset
        a.mov(__word_ptr[dap + 6], (ushort)(KernelLayout.KernelLoad >> 4)); // buffer segment
        a.mov(__dword_ptr[dap + 8], 1);          // LBA (low): the kernel starts at sector 1
        a.mov(__dword_ptr[dap + 12], 0);
        a.mov(cx, (ushort)kernelSectors);
        a.Label(ref readLoop);
        a.mov(ax, cx);
        a.cmp(ax, SectorsPerRead);
        a.jbe(countOk);
        a.mov(ax, SectorsPerRead);
        a.Label(ref countOk);
        a.mov(__word_ptr[dap + 2], ax);
        a.push(cx);
        a.push(ax);
        a.mov(si, dap);
        a.mov(ah, 0x42);
        a.mov(dl, __byte_ptr[KernelLayout.BootDrive]);
        a.@int(0x13);
        a.pop(ax);
        a.pop(cx);
        a.jc(fail);
        a.sub(cx, ax);
        a.add(__word_ptr[dap + 6], SectorsPerRead * 512 / 16);
        a.add(__dword_ptr[dap + 8], SectorsPerRead);
        a.test(cx, cx);
        a.jnz(readLoop);

        a.lgdt(__[KernelLayout.BootSectorAddress + GdtPointerOffset]);
        a.mov(eax, cr0);
        a.or(eax, 1);
        a.mov(cr0, eax);
        // ptr16:32 so that the 32-bit offset of the kernel entry (above 64 KiB) fits.
        a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, KernelLayout.Code32Selector, KernelLayout.Entry32));
        a.Label(ref fail);
        a.PrintLiteral("BOOTFAIL disk read\n");
        a.Label(ref done);
        a.mov(dx, DebugPort.BochsShutdown);
        foreach (char c in "Shutdown")
        {
            a.mov(al, (byte)c);
            a.@out(dx, al);
        }

        a.hlt();
        a.jmp(done);

        byte[] code = a.ToBytes(KernelLayout.BootSectorAddress);
        if (code.Length > GdtOffset)
        {
            throw new InvalidOperationException($"boot sector code is {code.Length} bytes; only {GdtOffset} fit before the GDT");
        }

        var sector = new byte[Size];
        code.CopyTo(sector, 0);
        for (int i = 0; i < GdtEntries.Length; i++)
        {
            BitConverter.TryWriteBytes(sector.AsSpan(GdtOffset + i * 8), GdtEntries[i]);
        }

        BitConverter.TryWriteBytes(sector.AsSpan(GdtPointerOffset), (ushort)(GdtEntries.Length * 8 - 1));
        BitConverter.TryWriteBytes(sector.AsSpan(GdtPointerOffset + 2), (uint)(KernelLayout.BootSectorAddress + GdtOffset));
        sector[510] = 0x55;
        sector[511] = 0xAA;
        return sector;
    }
}
