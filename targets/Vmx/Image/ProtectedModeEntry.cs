using Iced.Intel;
using static Iced.Intel.AssemblerRegisters;

namespace EptFuzz.Targets.Vmx.Image;

/// <summary>
/// 32-bit code the boot sector jumps to: builds the host's identity page tables (4 GiB with 2 MiB
/// pages, so the kernel reaches RAM above 1 GiB too), turns on PAE, EFER.LME and paging (with CR0.NE, which VMX
/// needs) and far-jumps into the 64-bit kernel.
/// </summary>
internal static class ProtectedModeEntry
{
    public static byte[] Build()
    {
        var a = new Assembler(32);
        var pdLoop = a.CreateLabel();

        a.mov(ax, KernelLayout.DataSelector);
        a.mov(ds, ax);
        a.mov(es, ax);
        a.mov(ss, ax);
        a.mov(fs, ax);
        a.mov(gs, ax);
        a.mov(esp, KernelLayout.StackTop);
        a.cld();

        // The runtime area is not part of the image: clear it so tables and variables start at zero.
        a.mov(edi, KernelLayout.HostPml4);
        a.xor(eax, eax);
        a.mov(ecx, (KernelLayout.RuntimeEnd - KernelLayout.HostPml4) / 4);
        a.rep.stosd();

        a.mov(__dword_ptr[KernelLayout.HostPml4], KernelLayout.HostPdpt | 3);
        for (uint i = 0; i < KernelLayout.HostPdCount; i++)
        {
            a.mov(__dword_ptr[KernelLayout.HostPdpt + i * 8], (KernelLayout.HostPd + i * 0x1000) | 3);
        }

        // The page directories are contiguous: one loop fills all of them (4 GiB of 2 MiB pages).
        a.mov(edi, KernelLayout.HostPd);
        a.mov(eax, 0x83); // P | RW | PS
        a.mov(ecx, 512 * KernelLayout.HostPdCount);
        a.Label(ref pdLoop);
        a.mov(__dword_ptr[edi], eax);
        a.add(eax, 0x200000);
        a.add(edi, 8);
        a.dec(ecx);
        a.jnz(pdLoop);

        a.mov(eax, cr4);
        a.or(eax, 0x20); // PAE
        a.mov(cr4, eax);
        a.mov(eax, KernelLayout.HostPml4);
        a.mov(cr3, eax);
        a.mov(ecx, Msr.Efer);
        a.rdmsr();
        a.or(eax, 0x100); // LME
        a.wrmsr();
        a.mov(eax, cr0);
        a.or(eax, unchecked((int)0x80000021)); // PG | NE | PE
        a.mov(cr0, eax);
        a.AddInstruction(Instruction.CreateBranch(Code.Jmp_ptr1632, KernelLayout.Code64Selector, KernelLayout.Code64));

        byte[] code = a.ToBytes(KernelLayout.Entry32);
        if (code.Length > KernelLayout.Entry32Size)
        {
            throw new InvalidOperationException("32-bit entry overflows its slot");
        }

        return code;
    }
}
