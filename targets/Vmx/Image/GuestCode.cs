using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// The guest's probe stubs, placed at the start of the window's code page. Each performs exactly
/// one probe access first (so an exit reports that access), then reads the qword-aligned tag of the
/// same page into RBX (same page, same translation, so it cannot fault when the first access did
/// not) and leaves with VMCALL. RAX holds the probe address on entry.
/// </summary>
public static class GuestCode
{
    public const ulong ReadStub = 0x00;
    /// <summary>The write is a read-modify-write that adds 0: it leaves memory as the case knows it.</summary>
    public const ulong WriteStub = 0x20;
    /// <summary>Jumps to the probe address, where the host planted "mov ebx, id; vmcall".</summary>
    public const ulong FetchStub = 0x40;
    /// <summary>Only VMCALL: used to ask whether VM entry succeeds.</summary>
    public const ulong VmcallStub = 0x60;
    public const int Size = 0x80;

    /// <summary>Bytes of the stubs for a code page at guest-linear <paramref name="codeAddress"/>.</summary>
    public static byte[] Build(ulong codeAddress)
    {
        var page = new byte[Size];
        Put(page, ReadStub, Stub(codeAddress + ReadStub, a => a.movzx(ecx, __byte_ptr[rax])));
        Put(page, WriteStub, Stub(codeAddress + WriteStub, a => a.add(__byte_ptr[rax], 0)));
        var fetch = new Assembler(64);
        fetch.jmp(rax);
        Put(page, FetchStub, fetch.ToBytes(codeAddress + FetchStub));
        var vmcall = new Assembler(64);
        vmcall.vmcall();
        Put(page, VmcallStub, vmcall.ToBytes(codeAddress + VmcallStub));
        return page;
    }

    /// <summary>"mov ebx, 0; vmcall" as a little-endian qword; the kernel ORs the id into bytes 1-4.</summary>
    public const ulong PlantedFetchTemplate = 0xC1010F00000000BB;

    /// <summary>The 8 bytes planted at a fetch target: "mov ebx, id; vmcall" (5 + 3 bytes).</summary>
    public static ulong PlantedFetch(uint id)
    {
        var a = new Assembler(64);
        a.mov(ebx, id);
        a.vmcall();
        byte[] bytes = a.ToBytes(0);
        return BitConverter.ToUInt64(bytes);
    }

    private static byte[] Stub(ulong address, Action<Assembler> access)
    {
        var a = new Assembler(64);
        access(a);
        a.and(rax, -8);
        a.mov(rbx, __qword_ptr[rax]);
        a.vmcall();
        return a.ToBytes(address);
    }

    private static void Put(byte[] page, ulong offset, byte[] code)
    {
        if (code.Length > 0x20)
        {
            throw new InvalidOperationException("guest stub overflows its 32-byte slot");
        }

        code.CopyTo(page, (int)offset);
    }
}
