using EptFuzz.Targets.Vmx.Image;
using Iced.Intel;

namespace EptFuzz.Vmx.Tests;

public sealed class ImageBuilderTests
{
    [Fact]
    public void BootSector_Is512BytesWithSignature()
    {
        byte[] sector = BootSector.Build(70);
        Assert.Equal(512, sector.Length);
        Assert.Equal(0x55, sector[510]);
        Assert.Equal(0xAA, sector[511]);
    }

    [Fact]
    public void BootSector_ReadsTheKernelAndFarJumpsToThe32BitEntry()
    {
        byte[] sector = BootSector.Build(70);
        var decoder = Decoder.Create(16, new ByteArrayCodeReader(sector[..0x1A0]), KernelLayout.BootSectorAddress);
        var instructions = new List<Instruction>();
        while (decoder.IP < KernelLayout.BootSectorAddress + 0x1A0)
        {
            instructions.Add(decoder.Decode());
        }

        Assert.Contains(instructions, i => i.Code == Code.Int_imm8 && i.Immediate8 == 0x13);
        Assert.Contains(instructions, i => i.Code == Code.Mov_r16_imm16 && i.Op0Register == Register.CX && i.Immediate16 == 70);
        var far = Assert.Single(instructions, i => i.Code == Code.Jmp_ptr1632);
        Assert.Equal(KernelLayout.Code32Selector, far.FarBranchSelector);
        Assert.Equal(KernelLayout.Entry32, far.FarBranch32);
    }

    [Fact]
    public void BootSector_RefusesAKernelThatCannotFitBelowTheEbda()
    {
        int tooMany = (int)((KernelLayout.KernelLoadLimit - KernelLayout.KernelLoad) / 512) + 1;
        Assert.Throws<ArgumentOutOfRangeException>(() => BootSector.Build(tooMany));
    }

    [Fact]
    public void DiskImage_PlacesKernelAfterBootSectorAndPadsToCylinders()
    {
        var script = new ScriptBuilder().Write(0x400000, 0x1234);
        var image = DiskImage.Build(script);
        Assert.Equal(0, image.Bytes.Length % DiskImage.CylinderBytes);
        byte[] kernel = DiskImage.BuildKernel(script.ToBytes());
        Assert.Equal(kernel, image.Bytes.AsSpan(512, kernel.Length).ToArray());
        // The script sits at its fixed address: the first command is the write.
        int scriptOffset = 512 + (int)(KernelLayout.Script - KernelLayout.KernelLoad);
        Assert.Equal((ulong)ScriptOp.Write, BitConverter.ToUInt64(image.Bytes, scriptOffset));
        Assert.Equal(0x400000UL, BitConverter.ToUInt64(image.Bytes, scriptOffset + 8));
    }

    [Fact]
    public void Kernel_64BitCodeDecodesAndUsesVmxInstructions()
    {
        byte[] kernel = DiskImage.BuildKernel(new ScriptBuilder().ToBytes());
        int start = (int)(KernelLayout.Code64 - KernelLayout.KernelLoad);
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(kernel, start, (int)KernelLayout.Code64Size), KernelLayout.Code64);
        var codes = new HashSet<Code>();
        while (decoder.IP < KernelLayout.Code64 + KernelLayout.Code64Size)
        {
            codes.Add(decoder.Decode().Code);
        }

        Assert.Contains(Code.Vmxon_m64, codes);
        Assert.Contains(Code.Vmlaunch, codes);
        Assert.Contains(Code.Vmresume, codes);
        Assert.Contains(Code.Invept_r64_m128, codes);
    }

    [Fact]
    public void ScriptBuilder_EndsWithEndCommand()
    {
        byte[] bytes = new ScriptBuilder().Add(ScriptOp.Probe, 7, 8, 9, flags: 1).ToBytes();
        Assert.Equal(64, bytes.Length);
        Assert.Equal((ulong)ScriptOp.Probe | 0x100, BitConverter.ToUInt64(bytes, 0));
        Assert.Equal(9UL, BitConverter.ToUInt64(bytes, 24));
        Assert.Equal((ulong)ScriptOp.End, BitConverter.ToUInt64(bytes, 32));
    }

    [Fact]
    public void Tag_RoundTrips()
    {
        ulong tag = Tag.Of(0xF_FFFF_F000_0008, 2);
        Assert.True(Tag.TryDecode(tag, out ulong address, out int size));
        Assert.Equal(0xF_FFFF_F000_0008UL, address);
        Assert.Equal(2, size);
        Assert.False(Tag.TryDecode(0x0000_0000_0040_4337, out _, out _));
    }

    [Fact]
    public void PlantedFetch_IsMovEbxThenVmcall()
    {
        ulong planted = GuestCode.PlantedFetch(0x1234);
        byte[] bytes = BitConverter.GetBytes(planted);
        var decoder = Decoder.Create(64, new ByteArrayCodeReader(bytes));
        var mov = decoder.Decode();
        Assert.Equal(Code.Mov_r32_imm32, mov.Code);
        Assert.Equal(0x1234u, mov.Immediate32);
        Assert.Equal(Code.Vmcall, decoder.Decode().Code);
        // The kernel plants the template with the id ORed into the immediate.
        Assert.Equal(GuestCode.PlantedFetchTemplate | (0x1234UL << 8), planted);
    }
}
